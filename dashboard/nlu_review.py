"""The NLU review queue: what the bot could not answer, and what coordinators decide about it.

Assigning a message to a FAQ topic makes its text a training example of that topic; marking
it out of scope makes it an example of `out_of_scope`; either way the question leaves the
queue. The next retraining (dashboard.retrain) includes the examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.models import Contact, Message, NluExample, UnansweredQuestion, utcnow
from dashboard.accounts import Account
from dashboard.audit import record
from nlu.catalogue import Catalogue

OPEN = "open"
ASSIGNED = "assigned"
OUT_OF_SCOPE = "out_of_scope"
DISMISSED = "dismissed"
REASONS = ("low_confidence", "out_of_scope", "nlu_unavailable", "human_requested")
MAX_EXAMPLE = 500
DEVANAGARI = re.compile(r"[\u0900-\u097F]")


class ReviewError(ValueError):
    """The decision cannot be recorded; the message says why."""


@dataclass(frozen=True)
class QueueItem:
    """One question waiting for review."""

    id: int
    message_id: int
    contact_id: int
    phone: str
    body: str
    reason: str
    candidates: list[Any]
    created_at: datetime


def queue(
    session: Session, reason: str | None = None, before_id: int | None = None, limit: int = 50
) -> tuple[list[QueueItem], int | None]:
    """Open questions, newest first; returns them and the `before_id` of the next page."""
    u = UnansweredQuestion.__table__.c
    m = Message.__table__.c
    c = Contact.__table__.c
    conditions = [u.status == OPEN]
    if reason:
        conditions.append(u.reason == reason)
    if before_id:
        conditions.append(u.id < before_id)
    rows = session.execute(
        select(
            u.id, u.message_id, u.contact_id, c.phone, m.body, u.reason, u.candidates, u.created_at
        )
        .join(Message.__table__, m.id == u.message_id)
        .join(Contact.__table__, c.id == u.contact_id)
        .where(*conditions)
        .order_by(u.id.desc())
        .limit(limit + 1)
    ).all()
    items = [
        QueueItem(
            r.id,
            r.message_id,
            r.contact_id,
            r.phone,
            r.body,
            r.reason,
            list(r.candidates or []),
            r.created_at,
        )
        for r in rows[:limit]
    ]
    return items, (items[-1].id if len(rows) > limit and items else None)


def open_count(session: Session) -> int:
    """How many questions wait for review."""
    u = UnansweredQuestion.__table__.c
    return int(session.scalar(select(func.count()).where(u.status == OPEN)) or 0)


def script_of(text: str, contact_language: str | None) -> str:
    """en, ne (Devanagari) or romanized: the catalogue's example scripts."""
    if DEVANAGARI.search(text):
        return "ne"
    return "romanized" if contact_language == "ne" else "en"


def _catalogue_owner(catalogue: Catalogue, text: str) -> str | None:
    folded = text.casefold()
    groups = [
        *((t.intent, t.examples) for t in catalogue.topics.values()),
        *((i.intent, i.examples) for i in catalogue.intents.values()),
    ]
    for intent, examples in groups:
        if any(x.casefold() == folded for texts in examples.values() for x in texts):
            return intent
    return None


def decide(
    session: Session,
    catalogue: Catalogue,
    viewer: Account,
    item_id: int,
    decision: str,
    intent: str | None = None,
) -> str:
    """Records a decision on an open question; returns what happened, for the page.

    Args:
        session: a write session (the caller commits).
        catalogue: the FAQ topics and intents (conflicting examples are refused).
        viewer: who decides.
        item_id: the unanswered_questions row.
        decision: `assigned` (with `intent`, a FAQ intent), `out_of_scope` or `dismissed`.
        intent: the topic's intent for `assigned`.

    Raises:
        ReviewError: the question is gone or already decided, the topic is unknown, the
            text is too long, or the catalogue already gives the text to another intent.
    """
    item = session.get(UnansweredQuestion, item_id)
    if item is None:
        raise ReviewError("this question is no longer in the queue")
    if item.status != OPEN:
        raise ReviewError(f"this question was already {item.status.replace('_', ' ')}")
    if decision == ASSIGNED:
        topics = {t.intent for t in catalogue.topics.values()}
        if intent not in topics:
            raise ReviewError("choose one of the FAQ topics")
    elif decision == OUT_OF_SCOPE:
        intent = "out_of_scope"
    elif decision != DISMISSED:
        raise ReviewError(f"unknown decision {decision[:20]!r}")
    message = session.get(Message, item.message_id)
    contact = session.get(Contact, item.contact_id)
    assert message is not None and contact is not None
    outcome = "dismissed"
    if intent is not None:
        text = " ".join(message.body.split())
        if not text:
            raise ReviewError("the message has no text to learn from: dismiss it")
        if len(text) > MAX_EXAMPLE:
            raise ReviewError(f"the text is longer than {MAX_EXAMPLE} characters: dismiss it")
        owner = _catalogue_owner(catalogue, text)
        if owner is not None and owner != intent:
            raise ReviewError(f"the training data already has this text as {owner}")
        taken = session.scalar(
            select(NluExample.intent).where(func.lower(NluExample.text) == text.lower()).limit(1)
        )
        if taken is not None and taken != intent:
            raise ReviewError(f"this text is already an example of {taken}")
        if owner is None and taken is None:
            session.add(
                NluExample(
                    text=text,
                    intent=intent,
                    language=script_of(text, contact.language),
                    source_message_id=message.id,
                    created_by=viewer.label,
                    created_at=utcnow(),
                )
            )
            outcome = f"added as an example of {intent}"
        else:
            outcome = f"already an example of {intent}"
    item.status = decision
    record(
        session,
        viewer.label,
        f"nlu_{decision}",
        {"unanswered_id": item.id, "message_id": message.id, "intent": intent},
    )
    return outcome


def new_examples(session: Session, since: datetime | None) -> int:
    """Examples made since `since` (all when None): what a retraining would add."""
    query = select(func.count()).select_from(NluExample)
    if since is not None:
        query = query.where(NluExample.created_at > since)
    return int(session.scalar(query) or 0)
