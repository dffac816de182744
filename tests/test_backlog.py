"""Backpressure people can see: /readyz and /metrics say when the worker is behind, the
embedded queue hands out people's messages first, and broadcasts pause while it is behind."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.messages import Channel, Inbound
from bot.inbox import accept
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from tests.support.clock import FakeClock


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {"BACKLOG_MESSAGES": "2", "BACKLOG_SECONDS": "30"}


def store(runtime: Runtime, clock: FakeClock, count: int) -> list[int]:
    """`count` inbound messages stored and not handled (the worker is behind)."""
    return [
        accept(
            runtime.db,
            Inbound(Channel.SMS, f"+97798100000{n:02d}", "hello", provider_id=f"SMb{n}"),
            now=clock(),
        ).contact_id
        for n in range(count)
    ]


def test_readyz_and_metrics_say_the_worker_is_behind(
    runtime: Runtime, client: Any, clock: FakeClock
) -> None:
    store(runtime, clock, 2)
    clock.advance(5)
    ready = client.get("/readyz")
    assert (
        ready.get_json()["backlog"] == "ok: inbound 2 waiting (oldest 5 s), outbox 0 (oldest 0 s)"
    )
    store(runtime, clock, 3)  # 3 waiting > BACKLOG_MESSAGES=2 (the first two are the same)
    ready = client.get("/readyz")
    assert ready.status_code == 200  # said, not unready: the web still stores webhooks
    assert ready.get_json()["backlog"].startswith("behind: inbound 3 waiting")
    assert "BACKLOG_MESSAGES=2" in ready.get_json()["backlog"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'bot_queue_waiting_messages{queue="inbound"} 3.0' in metrics
    assert 'bot_queue_oldest_age_seconds{queue="inbound"} 5.0' in metrics
    assert 'bot_queue_oldest_age_seconds{queue="outbox"} 0.0' in metrics


def test_an_old_message_alone_makes_the_worker_behind(runtime: Runtime, clock: FakeClock) -> None:
    store(runtime, clock, 1)
    assert not runtime.behind()
    clock.advance(31)
    assert runtime.behind()


def test_the_embedded_queue_hands_out_inbound_before_broadcasts(
    settings: Settings, clock: FakeClock
) -> None:
    runtime = Runtime(settings, huey=make_huey(settings), clock=clock)
    try:
        runtime.enqueue_broadcast_send(1)
        runtime.retry_task(7)
        runtime.enqueue_contact(5)
        names = [runtime.huey.dequeue().name for _ in range(3)]
        assert names == ["process_contact", "send_retry", "broadcast_send"]
    finally:
        runtime.huey.storage.flush_all()
        runtime.close()


def test_a_broadcast_pauses_while_the_worker_is_behind(
    runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.runtime

    slices: list[int] = []
    later: list[tuple[Any, float]] = []

    def send_slice(ports: Any, run_id: int, token: Any) -> Any:
        slices.append(run_id)
        return (
            bot.runtime.SliceResult("done", 0) if hasattr(bot.runtime, "SliceResult") else _Done()
        )

    monkeypatch.setattr(bot.runtime, "send_slice", send_slice)
    monkeypatch.setattr(
        runtime.broadcast_send_task,
        "schedule",
        lambda args, delay: later.append((args, delay)),
    )
    contacts = store(runtime, clock, 3)
    runtime._send_broadcast(9)
    assert slices == [] and [(args[0], delay) for args, delay in later] == [(9, 10.0)]
    for contact_id in contacts:  # the worker catches up
        runtime.inbox.process_contact(contact_id)
    runtime._send_broadcast(9)
    assert slices == [9]


class _Done:
    state = "done"
    resume_at = None


def test_the_dashboard_says_the_service_is_behind(
    app: Any, runtime: Runtime, clock: FakeClock
) -> None:
    from tests.dashboard.support import add_user, signed_in

    staff = signed_in(app, runtime.db, add_user(runtime.db, "s@example.org", "staff", "x"))
    page = staff.get("/dashboard/").get_data(as_text=True)
    assert "The service is behind" not in page
    store(runtime, clock, 3)
    app.extensions.pop("bot_backlog_banner", None)  # read again now, not in 5 s
    page = staff.get("/dashboard/").get_data(as_text=True)
    assert "The service is behind: inbound 3 waiting" in page
