"""Builders for flow tests: the shipped vocabulary and texts, and a transcript runner."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from bot.core.content import Content
from bot.core.messages import Language
from flows.answers import Vocabulary
from flows.engine import Kit, Session, Step, start, step
from flows.schema import Flow, FlowFiles, load_flow

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@cache
def kit() -> Kit:
    """The shipped answer vocabulary and bot texts."""
    return Kit(Vocabulary.load(), Content.load().texts)


@cache
def shipped() -> FlowFiles:
    return FlowFiles.load()


def flow_from(tmp_path: Path, text: str, name: str = "survey.yml") -> Flow:
    """A definition written to a file and loaded (so errors carry the file and line)."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_flow(path)


class Transcript:
    """Runs one flow through the pure engine: `send` a text, get the bot's messages back."""

    def __init__(self, flow: Flow, language: Language = Language.EN) -> None:
        self.flow = flow
        self.language = language
        self.now = T0
        first = start(flow, "s1", now=self.now, language=language, kit=kit())
        self.session: Session = first.session
        self.opening = first.messages
        self.last: Step = first

    def send(self, text: str, minutes: int = 1) -> str:
        self.now += timedelta(minutes=minutes)
        self.last = step(
            self.flow, self.session, text, now=self.now, language=self.language, kit=kit()
        )
        self.session = self.last.session
        return "\n".join(self.last.messages)
