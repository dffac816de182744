"""The coordinators' side of feedback: list it, change its status, answer it.

An answer goes to the person through the normal outbox (a row first, then a send job), so it
is retried, recorded and refused if they have opted out since.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select

from bot.core.messages import Channel, Language, Outbound
from bot.db.database import Database
from bot.db.models import Contact, Feedback
from bot.outbox import MAX_BODY, MessageTooLong, Outbox

log = logging.getLogger(__name__)

STATUSES = ("new", "in_review", "answered", "closed")


class FeedbackError(ValueError):
    """The feedback does not exist or the change is not allowed; the message says why."""


class FeedbackPorts(Protocol):
    """What feedback needs (the runtime has all of it): the database, the clock, the outbox
    and the task that sends an outbox row."""

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def retry_task(self) -> Callable[[int], object]: ...


@dataclass(frozen=True)
class Answered:
    feedback_id: int
    message_id: int


def set_status(runtime: FeedbackPorts, reference: str, status: str) -> None:
    """Moves feedback to `status` (new, in_review, answered, closed)."""
    if status not in STATUSES:
        raise FeedbackError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    with runtime.db.write() as session:
        feedback = session.scalar(select(Feedback).where(Feedback.reference == reference))
        if feedback is None:
            raise FeedbackError(f"no feedback with reference {reference!r}")
        feedback.status = status
        feedback.updated_at = runtime.clock()


def answer(runtime: FeedbackPorts, reference: str, text: str, by: str) -> Answered:
    """Stores the answer, marks the feedback answered and sends the answer to the person."""
    body = " ".join(text.split())
    if not body:
        raise FeedbackError("the answer is empty")
    if len(body) > MAX_BODY:
        raise FeedbackError(f"the answer is longer than {MAX_BODY} characters")
    now = runtime.clock()
    with runtime.db.write() as session:
        feedback = session.scalar(select(Feedback).where(Feedback.reference == reference))
        if feedback is None:
            raise FeedbackError(f"no feedback with reference {reference!r}")
        contact = session.get(Contact, feedback.contact_id)
        assert contact is not None
        feedback.answer = body
        feedback.answered_by = by
        feedback.answered_at = now
        feedback.status = "answered"
        feedback.updated_at = now
        # The person gets the answer with its reference: that final text is what must fit
        # and what the segments are counted on.
        outbound = Outbound(
            channel=Channel(feedback.channel),
            to=contact.phone,
            body=f"{feedback.reference}: {body}",
            language=Language(feedback.language),
            kind="feedback_answer",
        )
        try:
            message_id = runtime.outbox.enqueue(session, contact.id, outbound)
        except MessageTooLong as exc:
            raise FeedbackError(
                f"the answer with its reference ({feedback.reference}: ) is longer than "
                f"{MAX_BODY} characters"
            ) from exc
        answered = Answered(feedback.id, message_id)
    # If this enqueue is lost, the worker's sweeper finds the pending row and sends it.
    try:
        runtime.retry_task(answered.message_id)
    except Exception:
        log.exception("could not enqueue the answer to %s; the sweeper will send it", reference)
    return answered


def newest(db: Database, status: str | None = None, limit: int = 50) -> list[Feedback]:
    """The newest feedback first, of one status or all."""
    query = select(Feedback).order_by(Feedback.id.desc()).limit(limit)
    if status:
        query = query.where(Feedback.status == status)
    with db.read() as session:
        return list(session.scalars(query))
