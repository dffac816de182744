"""Work folders: removing what files kept of an erased person.

The service writes people's numbers and texts to files in a few places: uploaded contact
imports (`var/imports/*.csv`), training data built from the NLU review (`build/nlu/nlu.yml`
by `bot nlu build`, `var/nlu/run-*/nlu.yml` by a dashboard retraining that failed), and
exports an operator saved under `var/exports/`. A file that mentions the person loses the
lines that do (a CSV row, a training example); a file that is theirs alone (a JSON or zip
export, a binary file) is deleted. The live database and queue files are erased by other
means (secure_delete, WAL truncation) and are skipped here.
"""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Files too large to be ours (models, backups): reported, not read.
MAX_BYTES = 256 * 1024 * 1024
WHOLE_FILE = {".json"}
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", ".write-lock")


@dataclass
class FileScrub:
    """What the scrub did: files rewritten without the person's lines, files deleted."""

    changed: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    too_large: list[Path] = field(default_factory=list)


def live_files(paths: Iterable[Path]) -> set[Path]:
    """The database (or queue) files and their SQLite companions: not for the file scrub."""
    skipped: set[Path] = set()
    for path in paths:
        resolved = path.resolve()
        skipped.add(resolved)
        skipped.update(Path(f"{resolved}{suffix}") for suffix in SQLITE_COMPANIONS)
    return skipped


def _archive_mentions(path: Path, data: bytes, needles: Sequence[bytes]) -> bool | None:
    """Whether a zip or gzip file mentions a needle inside; None if it is neither."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                return any(
                    any(n in archive.read(name) for n in needles) for name in archive.namelist()
                )
        except (zipfile.BadZipFile, OSError):
            return None
    if data[:2] == b"\x1f\x8b":
        try:
            inner = gzip.decompress(data)
        except (OSError, EOFError):
            return None
        return any(n in inner for n in needles)
    return None


def _rewrite(path: Path, text: str) -> None:
    """Replaces the file's content in one step, keeping its permissions."""
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _example_line(line: str, texts: frozenset[str]) -> bool:
    """A line that is one of `texts` alone, or as a YAML list item (training data)."""
    stripped = line.strip()
    if stripped.startswith("- "):
        stripped = stripped[2:].strip().strip("\"'")
    return " ".join(stripped.split()) in texts


def scrub_folders(
    folders: Iterable[Path], numbers: Iterable[str], texts: Iterable[str], skip: set[Path]
) -> FileScrub:
    """Removes the person's lines, or files, from every file under `folders`.

    Args:
        folders: work folders (missing ones are ignored).
        numbers: the number's forms: any line (or binary file) containing one goes.
        texts: texts of theirs copied into files (NLU examples): a line that is one of them
            (as `- text` in training data) goes. Matching whole lines keeps a short text
            from taking other lines with it.
        skip: resolved paths never touched (the live database and queue files).
    """
    wanted = sorted({n for n in numbers if n}, key=len, reverse=True)
    encoded = [n.encode("utf-8") for n in wanted]
    examples = frozenset(" ".join(t.split()) for t in texts if t.strip())
    example_bytes = [t.encode("utf-8") for t in examples]
    result = FileScrub()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not path.is_file() or path.resolve() in skip:
                continue
            if path.stat().st_size > MAX_BYTES:
                result.too_large.append(path)
                continue
            data = path.read_bytes()
            archived = _archive_mentions(path, data, encoded)
            if archived is not None:
                if archived:
                    path.unlink()
                    result.removed.append(path)
                continue
            has_number = any(n in data for n in encoded)
            if not has_number and not any(t in data for t in example_bytes):
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None or (has_number and path.suffix.lower() in WHOLE_FILE):
                if has_number:
                    path.unlink()
                    result.removed.append(path)
                continue
            lines = text.splitlines(keepends=True)
            kept = [
                line
                for line in lines
                if not any(n in line for n in wanted) and not _example_line(line, examples)
            ]
            if len(kept) == len(lines):
                continue
            if not "".join(kept).strip():
                path.unlink()
                result.removed.append(path)
            else:
                _rewrite(path, "".join(kept))
                result.changed.append(path)
    for path in result.too_large:
        log.warning("file scrub: %s is too large to read; check it by hand", path)
    return result


def mentions(folders: Iterable[Path], texts: Iterable[str]) -> list[Path]:
    """Files under `folders` with a line that is one of `texts` (read-only: project content)."""
    examples = frozenset(" ".join(t.split()) for t in texts if t.strip())
    found: list[Path] = []
    if not examples:
        return found
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_BYTES:
                continue
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                continue
            if any(_example_line(line, examples) for line in lines):
                found.append(path)
    return found
