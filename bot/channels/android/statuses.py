"""Delivery statuses from the Android SMS gateway, mapped to ours (api.py has the sources).

The app reports a message's progress by webhook (`sms:sent`, `sms:delivered`, `sms:failed`;
`sms:cancelled` when a message is cancelled before it went out) and in its API's `state`
(Pending, Processed, Sent, Delivered, Failed, Cancelling, Cancelled). Both are mapped here;
an `sms:failed` carries a `reason` text (e.g. RESULT_ERROR_GENERIC_FAILURE: often the SIM's
credit) and no code, so a failed message is recorded with that reason and no error code.
"""

from __future__ import annotations

from bot.channels.android.api import STATES, STATUS_EVENTS
from bot.core.status import MessageStatus

# What the provider reports (event names and API states, lower case) -> our status.
STATUSES: dict[str, MessageStatus] = {**STATES, **STATUS_EVENTS}
DELIVERY_REPORTS = True


def status_of(event: str) -> MessageStatus | None:
    """Our status for a status event (`sms:sent`...), None for other events."""
    return STATUS_EVENTS.get(event.strip().lower())
