"""The audit log: who did what from the dashboard (manual replies, imports, user changes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.db.models import AuditEvent, utcnow


def record(session: Session, actor: str, action: str, detail: dict[str, Any] | None = None) -> None:
    """Adds an audit event to the caller's transaction.

    Args:
        session: the write session the change itself is made in.
        actor: who did it (the account's name or email).
        action: what, as a short verb phrase (`manual_reply`, `user_created`).
        detail: ids and values that say which records it touched.
    """
    session.add(AuditEvent(actor=actor[:200], action=action, detail=detail, created_at=utcnow()))
