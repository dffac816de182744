"""The one builder of outbound rows, the status vocabulary and the channels' abilities."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.channels.console import ConsoleChannel
from bot.core.status import MessageStatus
from bot.outbox import MAX_BODY, MessageTooLong, moves_forward, outbound_row

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_statuses_keep_their_stored_values() -> None:
    assert [s.value for s in MessageStatus] == [
        "received",
        "processed",
        "planned",
        "pending",
        "dispatching",
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "failed",
        "undelivered",
        "delivered",
        "read",
        "canceled",
        "skipped",
    ]
    assert MessageStatus.DELIVERED == "delivered"
    assert moves_forward("sent", "delivered") and not moves_forward(MessageStatus.READ, "sent")


def test_row_measures_the_final_text() -> None:
    row = outbound_row(1, "sms", "न" * 71, "ne", "reply", NOW, status=MessageStatus.PENDING)
    assert (row["segments"], row["status"], row["direction"]) == (2, "pending", "out")
    priced = outbound_row(
        1, "whatsapp", "x" * 400, "en", "broadcast", NOW, status=MessageStatus.PLANNED, segments=1
    )
    assert priced["segments"] == 1


def test_a_row_to_be_sent_may_not_be_longer_than_the_limit() -> None:
    outbound_row(1, "sms", "a" * MAX_BODY, "en", "reply", NOW, status=MessageStatus.PENDING)
    with pytest.raises(MessageTooLong):
        outbound_row(1, "sms", "a" * 1601, "en", "reply", NOW, status=MessageStatus.PENDING)
    failed = outbound_row(1, "sms", "a" * 1601, "en", "reply", NOW, status=MessageStatus.FAILED)
    assert failed["body"] == "a" * 1601


def test_console_declares_it_cannot_look_up_sends() -> None:
    console = ConsoleChannel()
    assert not console.abilities.find_sent
    assert not console.abilities.templates
