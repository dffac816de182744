"""Paths that the README, the Makefile, the benches and the tests name exist (issue 14: tests
referred to a benchmark file in bench/ that was never written)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMED = re.compile(
    r"(?<![\w/.])((?:bench|bot|dashboard|data|flows|nlu|testkit|tests|webhooks)/[\w/.-]*\w\.(?:py|yml))"
)


def _documents() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "Makefile"]
    files += [ROOT / "bench" / name for name in ("README.md", "HISTORY.md")]
    for folder in ("bench", "testkit", "tests"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return [f for f in files if f.is_file()]


def test_every_named_source_or_data_file_exists() -> None:
    missing = {
        f"{document.relative_to(ROOT)}: {name}"
        for document in _documents()
        for name in NAMED.findall(document.read_text(encoding="utf-8"))
        if not (ROOT / name).exists() and "*" not in name
    }
    assert sorted(missing) == []
