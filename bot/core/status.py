"""The statuses a message row goes through (`messages.status`)."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """Where a message is. The values are stored in `messages.status` and shown on the
    dashboard: never rename one. A StrEnum compares equal to its string."""

    # Inbound: stored by the webhook, then handled by a worker.
    RECEIVED = "received"
    PROCESSED = "processed"
    # Outbound, ours: a broadcast's row waiting for its turn at the sender's pace, a row
    # due (now or at next_attempt_at), a row a worker has claimed and is sending.
    PLANNED = "planned"
    PENDING = "pending"
    DISPATCHING = "dispatching"
    # Outbound, the provider's (Twilio's status callbacks), in the order they progress.
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    DELIVERED = "delivered"
    READ = "read"
    # Outbound, final and never sent: a broadcast canceled, a recipient not reachable.
    CANCELED = "canceled"
    SKIPPED = "skipped"
