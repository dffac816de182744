"""The coordinators' side of feedback: list it, change its status, answer it.

An answer goes to the person through the normal outbox (a row first, then a send job), so it
is retried, recorded and refused if they have opted out since.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from bot.core.segments import count_segments
from bot.db.models import Contact, Feedback, Message
from bot.outbox import PENDING
from bot.runtime import Runtime

log = logging.getLogger(__name__)

STATUSES = ("new", "in_review", "answered", "closed")


class FeedbackError(ValueError):
    """The feedback does not exist or the change is not allowed; the message says why."""


@dataclass(frozen=True)
class Answered:
    feedback_id: int
    message_id: int


def set_status(runtime: Runtime, reference: str, status: str) -> None:
    """Moves feedback to `status` (new, in_review, answered, closed)."""
    if status not in STATUSES:
        raise FeedbackError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    with runtime.db.write() as session:
        feedback = session.scalar(select(Feedback).where(Feedback.reference == reference))
        if feedback is None:
            raise FeedbackError(f"no feedback with reference {reference!r}")
        feedback.status = status
        feedback.updated_at = runtime.clock()


def answer(runtime: Runtime, reference: str, text: str, by: str) -> Answered:
    """Stores the answer, marks the feedback answered and sends the answer to the person."""
    body = " ".join(text.split())
    if not body:
        raise FeedbackError("the answer is empty")
    if len(body) > 1600:
        raise FeedbackError("the answer is longer than 1600 characters")
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
        message = Message(
            contact_id=contact.id,
            direction="out",
            channel=feedback.channel,
            body=f"{feedback.reference}: {body}",
            status=PENDING,
            kind="feedback_answer",
            language=feedback.language,
            segments=count_segments(body).segments,
            allow_opted_out=False,
            attempts=0,
            num_media=0,
            next_attempt_at=None,  # due now
            created_at=now,
            updated_at=now,
        )
        session.add(message)
        session.flush()
        answered = Answered(feedback.id, message.id)
    # If this enqueue is lost, the worker's sweeper finds the pending row and sends it.
    try:
        runtime.retry_task(answered.message_id)
    except Exception:
        log.exception("could not enqueue the answer to %s; the sweeper will send it", reference)
    return answered
