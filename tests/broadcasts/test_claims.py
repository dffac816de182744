"""A broadcast slice claims rows by the pace of the routes they take: a slow route (an Android
phone, 0.1 segment/s) has a row claimed at a time, not a batch it cannot send and must
release, while rows of a fast route next to it go in large batches; nothing is lost or sent
twice across slices."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import pytest
from sqlalchemy import func, select, update

from bot.broadcasts import sending
from bot.broadcasts.fanout import plan_run
from bot.broadcasts.pacing import Pacer
from bot.broadcasts.ports import BroadcastPorts
from bot.broadcasts.sending import send_slice
from bot.broadcasts.service import Draft, create, start_run
from bot.channel_order import Route
from bot.core.status import MessageStatus
from bot.db.models import BroadcastRun, Message
from bot.runtime import Runtime
from bot.settings import Settings
from tests.support.builders import add_contact
from tests.support.clock import FakeClock

SLICE = 0.3  # seconds of real time per slice
PACED_SECONDS = 10.0  # the pace time each slice stands for (a fake pacer's budget)


class SlicePacer(Pacer):
    """A pacer whose budget is what each sender may send in PACED_SECONDS, refilled by
    `next_slice()`; past it, it waits for the slice's deadline and says no, as the real one
    does when the window frees nothing in time."""

    def __init__(self) -> None:
        super().__init__()
        self.spent: Counter[str] = Counter()

    def next_slice(self) -> None:
        self.spent.clear()

    def acquire(self, sender: str, rate: float, cost: int, deadline: float | None = None) -> bool:
        if rate <= 0:
            return True
        if self.spent[sender] + cost <= rate * PACED_SECONDS:
            self.spent[sender] += cost
            return True
        if deadline is not None:
            time.sleep(max(0.0, deadline - time.monotonic()))
        return False


def planned_run(runtime: Runtime, clock: FakeClock, contacts: int) -> int:
    """A run planned for `contacts` contacts (nothing sent), every other row routed by the
    Android gateway."""
    for _ in range(contacts):
        add_contact(runtime.db, language="en")
    ports = replace(runtime.broadcasts, tasks=NoTasks())
    broadcast_id = create(ports, Draft("Camp", "Camp on Sunday.", "आइतबार शिविर।"), "c@x.org")
    run_id = start_run(ports, broadcast_id, clock.now)
    assert run_id is not None
    assert plan_run(ports, run_id).planned == contacts
    with runtime.db.write() as session:
        ids = session.scalars(select(Message.id).where(Message.broadcast_run_id == run_id)).all()
        android = sorted(ids)[::2]
        session.execute(update(Message).where(Message.id.in_(android)).values(provider="android"))
    return run_id


class NoTasks:
    """Planning and sending run where the test says, not on a queue."""

    def enqueue_plan(self, run_id: int) -> None:
        pass

    def enqueue_send(self, run_id: int, token: object = None, at: object = None) -> None:
        pass


def test_rows_are_claimed_by_the_pace_of_their_route(
    unpaced_runtime: Runtime, env: dict[str, str], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = unpaced_runtime
    run_id = planned_run(runtime, clock, 20)  # 10 by sms:android, 10 by Twilio SMS (unpaced)
    settings = Settings.from_mapping(env | {"BROADCAST_PACE": "sms=0,whatsapp=0,sms:android=0.1"})
    pacer = SlicePacer()
    handed: list[int] = []
    claimed_at_handoff: list[Counter[str | None]] = []
    released: list[int] = []

    def send(message_id: int) -> bool:
        with runtime.db.write() as session:
            waiting = session.execute(
                select(Message.provider, func.count())
                .where(Message.broadcast_run_id == run_id)
                .where(Message.status == MessageStatus.DISPATCHING)
                .group_by(Message.provider)
            ).all()
            claimed_at_handoff.append(Counter({provider: n for provider, n in waiting}))
            # As the outbox does: the row leaves "dispatching" once handed over.
            session.execute(update(Message).where(Message.id == message_id).values(status="queued"))
        handed.append(message_id)
        return True

    real_release = sending._release

    def release(ports: BroadcastPorts, ids: list[int]) -> None:
        released.extend(ids)
        real_release(ports, ids)

    monkeypatch.setattr(sending, "_release", release)
    ports = replace(runtime.broadcasts, settings=settings, pacer=pacer, send=send, tasks=NoTasks())
    token = None
    slices = 0
    while True:
        pacer.next_slice()
        result = send_slice(ports, run_id, token, budget=SLICE)
        slices += 1
        if result.state == "done":
            break
        assert result.state == "more" and slices < 30
        token = result.resume_at
    # The phone's pace lets one segment through per slice: ten slices, the last one done.
    assert slices == 10
    # Never more than the one Android row the phone can take claimed at a time, and each
    # slice gave back at most that one row; Twilio's (unpaced) went in one batch.
    assert max(c["android"] for c in claimed_at_handoff) <= 1
    assert len(released) <= slices
    assert max(c[None] for c in claimed_at_handoff) == 10
    # Nothing lost, nothing twice.
    with runtime.db.read() as session:
        ids = session.scalars(select(Message.id).where(Message.broadcast_run_id == run_id)).all()
        status = session.scalar(select(BroadcastRun.status).where(BroadcastRun.id == run_id))
    assert Counter(handed) == Counter(ids) and len(ids) == 20
    assert status == "done"


def test_a_round_claims_about_a_second_of_each_senders_pace(
    unpaced_runtime: Runtime, env: dict[str, str]
) -> None:
    settings = Settings.from_mapping(
        env | {"BROADCAST_PACE": "sms=2,whatsapp=0,sms:android=0.1,sms:sparrow=10"}
    )
    ports = replace(unpaced_runtime.broadcasts, settings=settings)
    rows = [
        *[(n, "sms", "android", 1) for n in range(1, 6)],  # 0.1/s: its first row only
        *[(n, "sms", "sparrow", 3) for n in range(6, 12)],  # 10/s, 3 segments: three rows
        *[(n, "sms", None, 1) for n in range(12, 16)],  # 2/s: two rows
        *[(n, "whatsapp", None, 1) for n in range(16, 201)],  # unpaced: every one
    ]
    chosen = sending._within_pace(ports, rows, frozenset())
    assert chosen == [1, 6, 7, 8, 12, 13, *range(16, 201)]
    # While Sparrow is down its rows go (and are paced) as Twilio SMS: 2/s, shared.
    down = frozenset({Route("sms", "sparrow")})
    assert sending._within_pace(ports, rows[5:15], down) == [6]
