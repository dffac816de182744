"""What the core needs from an NLU engine, without knowing which one (Rasa, in nlu/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class NluUnavailable(Exception):
    """No NLU server could answer; the core falls back."""


@dataclass(frozen=True)
class Candidate:
    """One intent the model considered, with its confidence."""

    intent: str
    confidence: float


@dataclass(frozen=True)
class Understanding:
    """What the model made of a text: its best intent and the ranking behind it."""

    intent: str | None
    confidence: float
    ranking: tuple[Candidate, ...]


Understand = Callable[[str], Understanding]
