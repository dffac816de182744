"""Twilio's message statuses (the Message resource's `status`, the status callback's
`MessageStatus`) mapped to ours.

Source: Twilio's Message resource documentation ("Message status values"): queued, sending,
sent, failed, delivered, undelivered, receiving, received, accepted, scheduled, read,
partially_delivered, canceled. Ours were named after Twilio's, so each maps to the same
word; the inbound ones (receiving, received) and partially_delivered have no outbound
counterpart and are kept as reported (stored with the report, never applied).
"""

from __future__ import annotations

from bot.core.status import MessageStatus

STATUSES: dict[str, MessageStatus] = {
    status.value: status
    for status in (
        MessageStatus.ACCEPTED,
        MessageStatus.SCHEDULED,
        MessageStatus.QUEUED,
        MessageStatus.SENDING,
        MessageStatus.SENT,
        MessageStatus.FAILED,
        MessageStatus.UNDELIVERED,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
        MessageStatus.CANCELED,
    )
}


def ours(reported: str | None) -> str:
    """Our status for what Twilio reported: `queued` when it reported none (a fresh send),
    the reported word in lower case when it is not one of ours."""
    if not reported:
        return MessageStatus.QUEUED
    reported = reported.strip().lower()
    return STATUSES.get(reported, reported)
