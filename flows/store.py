"""Where sessions live between messages, behind a small interface.

The service keeps each contact's session in the contact row (`contacts.state`, written in
the same transaction as the replies and the response row; see bot/inbox.py), so a survey
resumes after a restart or hours of silence. `JsonMemoryStore` is the same contract in
memory, round-tripping through JSON exactly as the database does.
"""

from __future__ import annotations

import json
from typing import Protocol

from flows.engine import Session


class SessionStore(Protocol):
    """Loads and saves the session of one contact."""

    def load(self, contact: str) -> Session | None: ...

    def save(self, contact: str, session: Session | None) -> None: ...


class JsonMemoryStore:
    """Sessions kept as JSON text in memory."""

    def __init__(self) -> None:
        self._rows: dict[str, str] = {}

    def load(self, contact: str) -> Session | None:
        row = self._rows.get(contact)
        return Session.from_dict(json.loads(row)) if row is not None else None

    def save(self, contact: str, session: Session | None) -> None:
        if session is None:
            self._rows.pop(contact, None)
        else:
            self._rows[contact] = json.dumps(session.to_dict(), ensure_ascii=False)
