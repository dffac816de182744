"""Human handoff: a person replies by hand, and the bot stays quiet for that contact.

A manual reply is an outbox row like any other (retried, recorded, never sent to someone who
opted out). Pausing bumps the contact's version, so a worker that read the contact before the
pause re-reads it and stays quiet instead of answering over the person.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.core.messages import Channel, Language, Outbound
from bot.outbox import MAX_BODY, MessageTooLong
from bot.runtime import Runtime
from dashboard.access import require_contact
from dashboard.accounts import Account
from dashboard.audit import record

log = logging.getLogger(__name__)

MAX_REPLY = MAX_BODY
PAUSE_CHOICES = (1, 4, 24, 72, 168)


class HandoffError(ValueError):
    """The reply cannot be sent; the message says why."""


def reply_by_hand(
    runtime: Runtime, viewer: Account, contact_id: int, text: str, pause_hours: int
) -> int:
    """Sends `text` to the contact and pauses automatic answers for `pause_hours`.

    Returns the outbound message's id.

    Raises:
        HandoffError: the text is empty or too long, or the contact opted out.
        werkzeug.exceptions.NotFound: no such contact, or not the viewer's.
    """
    body = text.strip()
    if not body:
        raise HandoffError("the reply is empty")
    if len(body) > MAX_REPLY:
        raise HandoffError(f"the reply is longer than {MAX_REPLY} characters")
    if not 1 <= pause_hours <= 24 * 30:
        raise HandoffError("the pause must be between 1 hour and 30 days")
    now = runtime.clock()
    with runtime.db.write() as session:
        contact = require_contact(session, viewer, contact_id)
        if contact.opted_out:
            raise HandoffError("this person opted out (STOP): nothing can be sent to them")
        outbound = Outbound(
            channel=Channel(contact.channel),
            to=contact.phone,
            body=body,
            language=Language(contact.language or contact.last_language or "en"),
            kind="manual_reply",
        )
        try:
            message_id = runtime.outbox.enqueue(
                session, contact.id, outbound, extra={"by": viewer.label}
            )
        except MessageTooLong as exc:
            raise HandoffError(f"the reply is longer than {MAX_REPLY} characters") from exc
        contact.paused_until = now + timedelta(hours=pause_hours)
        contact.version += 1
        contact.updated_at = now
        record(
            session,
            viewer.label,
            "manual_reply",
            {"contact_id": contact.id, "message_id": message_id, "pause_hours": pause_hours},
        )
    # If this enqueue is lost, the worker's sweeper finds the pending row and sends it.
    try:
        runtime.retry_task(message_id)
    except Exception:
        log.exception("could not enqueue manual reply %s; the sweeper will send it", message_id)
    return message_id


def release(runtime: Runtime, viewer: Account, contact_id: int) -> None:
    """Lets the bot answer the contact automatically again."""
    now = runtime.clock()
    with runtime.db.write() as session:
        contact = require_contact(session, viewer, contact_id)
        contact.paused_until = None
        contact.version += 1
        contact.updated_at = now
        record(session, viewer.label, "handoff_released", {"contact_id": contact.id})
