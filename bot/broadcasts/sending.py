"""Sending a planned run at each sender's pace, in time slices, outside quiet hours.

A slice claims a few planned rows at a time, waits for the pacer, checks opt-out at the
last moment (the outbox's load) and hands each to the sender. A slice ends after a few
seconds so that broadcasts never hold a worker thread that inbound replies need; the next
slice is enqueued with a token that hands the run over. Cancel turns every row not yet
handed to the sender into `canceled`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, update

from bot.broadcasts.routing import sender_of
from bot.db.models import Broadcast, BroadcastRun, Message
from bot.inbox import DISPATCHING
from bot.outbox import CANCELED, PLANNED

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

SLICE_SECONDS = 15.0
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


def quiet_ends(now: datetime, runtime: Runtime) -> datetime:
    """The next end of the quiet hours after `now` (UTC)."""
    quiet = runtime.settings.quiet_hours
    assert quiet is not None
    local = now.astimezone(runtime.settings.zone)
    end = local.replace(hour=quiet[1].hour, minute=quiet[1].minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(now.tzinfo)


@dataclass(frozen=True)
class SliceResult:
    state: str  # more, done, quiet, canceled, busy, stopped
    sent: int = 0
    resume_at: datetime | None = None


def _take(runtime: Runtime, run_id: int, token: datetime | None, now: datetime) -> bool:
    held = or_(BroadcastRun.claimed_until.is_(None), BroadcastRun.claimed_until < now)
    if token is not None:
        held = or_(held, BroadcastRun.claimed_until == token)
    with runtime.db.write() as session:
        taken = session.execute(
            update(BroadcastRun)
            .where(BroadcastRun.id == run_id, BroadcastRun.status == "sending", held)
            .values(claimed_until=now + timedelta(seconds=SLICE_SECONDS) + HANDOFF)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def _hand_over(runtime: Runtime, run_id: int, until: datetime) -> None:
    with runtime.db.write() as session:
        session.execute(
            update(BroadcastRun).where(BroadcastRun.id == run_id).values(claimed_until=until)
        )


def _release(runtime: Runtime, ids: list[int]) -> None:
    """Rows claimed but not sent go back to waiting."""
    if not ids:
        return
    with runtime.db.write() as session:
        session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == DISPATCHING)
            .values(status=PLANNED, claimed_until=None)
        )


def _claim(runtime: Runtime, run_id: int, size: int, now: datetime) -> list[tuple[int, str, int]]:
    with runtime.db.write() as session:
        ids = session.scalars(
            select(Message.id)
            .where(Message.broadcast_run_id == run_id, Message.status == PLANNED)
            .order_by(Message.id)
            .limit(size)
        ).all()
        if not ids:
            return []
        rows = session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == PLANNED)
            .values(
                status=DISPATCHING,
                claimed_until=now + timedelta(seconds=runtime.settings.claim_seconds + 60),
                updated_at=now,
            )
            .returning(Message.id, Message.channel, Message.segments)
        ).all()
    return sorted((r.id, r.channel, r.segments or 1) for r in rows)


def _status(runtime: Runtime, run_id: int) -> str:
    with runtime.db.read() as session:
        return str(session.scalar(select(BroadcastRun.status).where(BroadcastRun.id == run_id)))


def _finish(runtime: Runtime, run_id: int, now: datetime) -> None:
    with runtime.db.write() as session:
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


def send_slice(
    runtime: Runtime, run_id: int, token: datetime | None = None, budget: float = SLICE_SECONDS
) -> SliceResult:
    """Sends the run's planned rows for up to `budget` seconds."""
    now = runtime.clock()
    if not _take(runtime, run_id, token, now):
        status = _status(runtime, run_id)
        return SliceResult("busy" if status == "sending" else "stopped")
    settings = runtime.settings
    if settings.quiet_hours and in_quiet_hours(
        now.astimezone(settings.zone).time(), settings.quiet_hours
    ):
        resume = quiet_ends(now, runtime)
        _hand_over(runtime, run_id, resume)
        return SliceResult("quiet", resume_at=resume)
    deadline = time.monotonic() + budget
    sent = 0
    next_cancel_check = 0.0
    while time.monotonic() < deadline:
        rates = {ch: settings.pace_for(ch, sender_of(settings, ch)) for ch in ("sms", "whatsapp")}
        paced = [r for r in rates.values() if r > 0]
        size = max(1, min(200, int(min(paced)) if paced else 200))
        claimed = _claim(runtime, run_id, size, runtime.clock())
        if not claimed:
            with runtime.db.read() as session:
                waiting = session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.broadcast_run_id == run_id, Message.status == PLANNED)
                )
            if not waiting:
                _finish(runtime, run_id, runtime.clock())
                return SliceResult("done", sent)
            time.sleep(0.05)  # rows changed under us (a cancel): look again
            continue
        for index, (message_id, channel, segments) in enumerate(claimed):
            if time.monotonic() >= next_cancel_check:
                next_cancel_check = time.monotonic() + CANCEL_CHECK_SECONDS
                if _status(runtime, run_id) != "sending":
                    _cancel_claimed(runtime, [m for m, _, _ in claimed[index:]])
                    return SliceResult("canceled", sent)
            sender = sender_of(settings, channel)
            if not runtime.pacer.acquire(sender, rates.get(channel, 0.0), segments, deadline):
                _release(runtime, [m for m, _, _ in claimed[index:]])
                break
            job = runtime.outbox.load(message_id)  # None when the contact opted out meanwhile
            if job is not None:
                runtime.dispatch_broadcast(job)
                sent += 1
    handoff = runtime.clock() + HANDOFF
    _hand_over(runtime, run_id, handoff)
    return SliceResult("more", sent, resume_at=handoff)


def _cancel_claimed(runtime: Runtime, ids: list[int]) -> None:
    with runtime.db.write() as session:
        session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == DISPATCHING)
            .values(status=CANCELED, claimed_until=None, error_message="broadcast canceled")
        )
