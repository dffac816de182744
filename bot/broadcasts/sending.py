"""Sending a planned run at each sender's pace, in time slices, outside quiet hours.

A slice claims a few planned rows at a time (what each sender can send in about a second at
its pace), waits for the pacer, checks opt-out at the last moment (the outbox's load) and
hands each to the sender. A slice ends after a few seconds so that broadcasts never hold a
worker thread that inbound replies need; the next slice is enqueued with a token that hands
the run over. Cancel turns every row not yet handed to the sender into `canceled`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time

from sqlalchemy import func, or_, select, update

from bot.broadcasts.ports import BroadcastPorts
from bot.broadcasts.routing import sender_of
from bot.channel_order import Route, Routes
from bot.core.status import MessageStatus
from bot.db.models import Broadcast, BroadcastRun, Message
from bot.failover import down_routes

log = logging.getLogger(__name__)

SLICE_SECONDS = 15.0
CLAIM_SECONDS = 1.0  # a round claims what each sender can send in about this long
MAX_CLAIM = 200  # and at most this many rows in all
HANDOFF = timedelta(seconds=60)  # the next slice has this long to take over
CANCEL_CHECK_SECONDS = 0.5


def in_quiet_hours(local: clock_time, quiet: tuple[clock_time, clock_time] | None) -> bool:
    """Whether a local time of day falls in the quiet hours (which may span midnight)."""
    if quiet is None:
        return False
    start, end = quiet
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def quiet_ends(now: datetime, ports: BroadcastPorts) -> datetime:
    """The next end of the quiet hours after `now` (UTC)."""
    quiet = ports.settings.quiet_hours
    assert quiet is not None
    local = now.astimezone(ports.settings.zone)
    end = local.replace(hour=quiet[1].hour, minute=quiet[1].minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(now.tzinfo)


@dataclass(frozen=True)
class SliceResult:
    state: str  # more, done, quiet, canceled, busy, stopped
    sent: int = 0
    resume_at: datetime | None = None


def _take(ports: BroadcastPorts, run_id: int, token: datetime | None, now: datetime) -> bool:
    held = or_(BroadcastRun.claimed_until.is_(None), BroadcastRun.claimed_until < now)
    if token is not None:
        held = or_(held, BroadcastRun.claimed_until == token)
    with ports.db.write() as session:
        taken = session.execute(
            update(BroadcastRun)
            .where(BroadcastRun.id == run_id, BroadcastRun.status == "sending", held)
            .values(claimed_until=now + timedelta(seconds=SLICE_SECONDS) + HANDOFF)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def _hand_over(ports: BroadcastPorts, run_id: int, until: datetime) -> None:
    with ports.db.write() as session:
        session.execute(
            update(BroadcastRun).where(BroadcastRun.id == run_id).values(claimed_until=until)
        )


def _release(ports: BroadcastPorts, ids: list[int]) -> None:
    """Rows claimed but not sent go back to waiting."""
    if not ids:
        return
    with ports.db.write() as session:
        session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == MessageStatus.DISPATCHING)
            .values(status=MessageStatus.PLANNED, claimed_until=None)
        )


def _claim(
    ports: BroadcastPorts, run_id: int, down: frozenset[Route], now: datetime
) -> list[tuple[int, str, str | None, int]]:
    """Claims the next rows of the run this round can send (`_within_pace`), in id order."""
    with ports.db.write() as session:
        waiting = session.execute(
            select(Message.id, Message.channel, Message.provider, Message.segments)
            .where(Message.broadcast_run_id == run_id, Message.status == MessageStatus.PLANNED)
            .order_by(Message.id)
            .limit(MAX_CLAIM)
        ).all()
        ids = _within_pace(
            ports, [(r.id, r.channel, r.provider, r.segments or 1) for r in waiting], down
        )
        if not ids:
            return []
        rows = session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == MessageStatus.PLANNED)
            .values(
                status=MessageStatus.DISPATCHING,
                claimed_until=now + timedelta(seconds=ports.settings.claim_seconds + 60),
                claimed_by=ports.owner,
                updated_at=now,
            )
            .returning(Message.id, Message.channel, Message.provider, Message.segments)
        ).all()
    return sorted(((r.id, r.channel, r.provider, r.segments or 1) for r in rows), key=_first)


def _first(row: tuple[int, str, str | None, int]) -> int:
    return row[0]


def _within_pace(
    ports: BroadcastPorts, rows: list[tuple[int, str, str | None, int]], down: frozenset[Route]
) -> list[int]:
    """The ids of `rows` (the next waiting ones, in id order) one round claims: for each
    sender their rows will be paced under (`_pace` of the route they will take), what it can
    send in about CLAIM_SECONDS at its pace, and at least its first row; an unpaced
    sender's rows all. A slow route (an Android phone: a few segments a minute) then has one
    row claimed at a time, not a batch it cannot send in the slice (released at its end),
    while a fast one next to it is not held to the slow one's batch."""
    budget: dict[str, float] = {}
    chosen: list[int] = []
    for message_id, channel, provider, segments in rows:
        sender, rate = _pace(ports, *_paced_as(ports, channel, provider, down))
        first = sender not in budget
        left = budget.setdefault(sender, rate * CLAIM_SECONDS if rate > 0 else math.inf)
        if not first and segments > left:
            continue  # this sender's share of the round is spent: a later round takes it
        budget[sender] = left - segments
        chosen.append(message_id)
    return chosen


def _pace(ports: BroadcastPorts, channel: str, provider: str | None) -> tuple[str, float]:
    """The sender key a route's sends are paced under (shared by every worker) and its rate:
    BROADCAST_PACE's entry for the sender, else the provider's ("sms:android"), else the
    channel's."""
    settings = ports.settings
    sender = sender_of(settings, channel, provider)
    return sender, settings.pace_for(channel, sender, provider)


def _status(ports: BroadcastPorts, run_id: int) -> str:
    with ports.db.read() as session:
        return str(session.scalar(select(BroadcastRun.status).where(BroadcastRun.id == run_id)))


def _finish(ports: BroadcastPorts, run_id: int, now: datetime) -> None:
    with ports.db.write() as session:
        run = session.get(BroadcastRun, run_id)
        assert run is not None
        run.status = "done"
        run.finished_at = now
        run.claimed_until = None
        broadcast = session.get(Broadcast, run.broadcast_id)
        one_off = broadcast is not None and broadcast.schedule != "recurring"
        if broadcast is not None and one_off and broadcast.status == "sending":
            broadcast.status = "sent"
            broadcast.updated_at = now


def _paced_as(
    ports: BroadcastPorts, channel: str, provider: str | None, down: frozenset[Route]
) -> tuple[str, str | None]:
    """The route a row's send will most likely take: its own, or while that is down (the
    outbox then moves it, bot/failover.py) the next route of its channel in CHANNEL_ORDER
    that is up, so the route that takes the load is the one paced."""
    if Route(channel, provider) not in down:
        return channel, provider
    routes = ports.routes or Routes(ports.settings.channel_order)
    for entry in routes.order:
        route = routes.canonical(entry)
        if route is not None and route.channel == channel and route not in down:
            return route.channel, route.provider
    return channel, provider


def send_slice(
    ports: BroadcastPorts, run_id: int, token: datetime | None = None, budget: float = SLICE_SECONDS
) -> SliceResult:
    """Sends the run's planned rows for up to `budget` seconds."""
    now = ports.clock()
    if not _take(ports, run_id, token, now):
        status = _status(ports, run_id)
        return SliceResult("busy" if status == "sending" else "stopped")
    settings = ports.settings
    if settings.quiet_hours and in_quiet_hours(
        now.astimezone(settings.zone).time(), settings.quiet_hours
    ):
        resume = quiet_ends(now, ports)
        _hand_over(ports, run_id, resume)
        return SliceResult("quiet", resume_at=resume)
    deadline = time.monotonic() + budget
    sent = 0
    next_cancel_check = 0.0
    while time.monotonic() < deadline:
        down = down_routes(ports.db)
        claimed = _claim(ports, run_id, down, ports.clock())
        if not claimed:
            with ports.db.read() as session:
                waiting = session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.broadcast_run_id == run_id)
                    .where(Message.status == MessageStatus.PLANNED)
                )
            if not waiting:
                _finish(ports, run_id, ports.clock())
                return SliceResult("done", sent)
            time.sleep(0.05)  # rows changed under us (a cancel): look again
            continue
        for index, (message_id, channel, provider, segments) in enumerate(claimed):
            if time.monotonic() >= next_cancel_check:
                next_cancel_check = time.monotonic() + CANCEL_CHECK_SECONDS
                if _status(ports, run_id) != "sending":
                    _cancel_claimed(ports, [row[0] for row in claimed[index:]])
                    return SliceResult("canceled", sent)
            sender, rate = _pace(ports, *_paced_as(ports, channel, provider, down))
            if not ports.pacer.acquire(sender, rate, segments, deadline):
                _release(ports, [row[0] for row in claimed[index:]])
                break
            if ports.send(message_id):  # False when the contact opted out meanwhile
                sent += 1
    handoff = ports.clock() + HANDOFF
    _hand_over(ports, run_id, handoff)
    return SliceResult("more", sent, resume_at=handoff)


def _cancel_claimed(ports: BroadcastPorts, ids: list[int]) -> None:
    with ports.db.write() as session:
        session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == MessageStatus.DISPATCHING)
            .values(
                status=MessageStatus.CANCELED,
                claimed_until=None,
                error_message="broadcast canceled",
            )
        )
