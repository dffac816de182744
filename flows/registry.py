"""Which definition runs which session: current files plus the versions sessions started on.

Changing a live survey file makes a new version (flows are identified by their content
digest). A session always finishes on the version it started on, and every response keeps
its version label, so earlier responses are never altered or mislabelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flows.located import locate
from flows.schema import Flow, FlowFiles, parse_flow


@dataclass(frozen=True)
class StoredVersion:
    """A definition as the database keeps it (see bot.surveys)."""

    key: str
    version: str
    digest: str
    source: Mapping[str, object]


def version_label(declared: str, taken: Iterable[str]) -> str:
    """The label for a new definition: its declared version, or `2.1`, `2.2`… when the file
    changed without its `version:` being raised."""
    used = set(taken)
    if declared not in used:
        return declared
    n = 1
    while f"{declared}.{n}" in used:
        n += 1
    return f"{declared}.{n}"


@dataclass(frozen=True)
class FlowBook:
    """The flows the bot can run: current definitions by key, any version by (key, label)."""

    current: Mapping[str, Flow]
    default_survey_key: str | None = None
    feedback_key: str | None = None
    versions: Mapping[tuple[str, str], Flow] = field(default_factory=dict)

    def get(self, key: str, version: str) -> Flow | None:
        """The definition a session of `key` at `version` runs, if known."""
        flow = self.versions.get((key, version))
        if flow is None:
            current = self.current.get(key)
            if current is not None and current.version == version:
                return current
        return flow

    def survey(self, key: str | None = None) -> Flow | None:
        """The current survey named `key`, or the default survey."""
        key = key or self.default_survey_key
        flow = self.current.get(key) if key else None
        return flow if flow is not None and flow.kind == "survey" else None

    @property
    def feedback(self) -> Flow | None:
        return self.current.get(self.feedback_key) if self.feedback_key else None

    @classmethod
    def from_files(cls, files: FlowFiles, stored: Iterable[StoredVersion] = ()) -> FlowBook:
        """Current definitions labelled against the stored versions.

        A file whose digest is stored runs under that stored label; a new digest gets a new
        label (the caller stores it). Every stored version stays runnable.
        """
        stored = list(stored)
        by_digest = {(s.key, s.digest): s.version for s in stored}
        current: dict[str, Flow] = {}
        flows = list(files.surveys.values()) + ([files.feedback] if files.feedback else [])
        for flow in flows:
            label = by_digest.get((flow.key, flow.digest))
            if label is None:
                label = version_label(
                    flow.version, (s.version for s in stored if s.key == flow.key)
                )
            current[flow.key] = flow.with_version(label)
        versions: dict[tuple[str, str], Flow] = {}
        for s in stored:
            if (s.key, s.version) in versions:
                continue
            origin = Path(f"<database: {s.key} version {s.version}>")
            versions[(s.key, s.version)] = parse_flow(locate(dict(s.source)), origin).with_version(
                s.version
            )
        for flow in current.values():
            versions[(flow.key, flow.version)] = flow
        default = files.default_survey
        return cls(
            current,
            default.key if default else None,
            files.feedback.key if files.feedback else None,
            versions,
        )
