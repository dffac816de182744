"""Fan-out: a run becomes one outbox row per recipient, streamed and resumable.

Rows are inserted in batches with the run's progress (the last contact id planned) in the
same transaction, and (run, contact) is unique, so a crash or a second worker mid-fan-out
never plans anyone twice and never skips anyone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.broadcasts.audience import Audience, stream
from bot.broadcasts.routing import route
from bot.broadcasts.service import invitation, message_of
from bot.db.models import Broadcast, BroadcastRun, Message
from bot.outbox import PLANNED, SKIPPED

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class PlanResult:
    state: str  # planned, busy, stopped
    planned: int = 0


def _take(runtime: Runtime, run_id: int, now: datetime) -> bool:
    with runtime.db.write() as session:
        taken = session.execute(
            update(BroadcastRun)
            .where(BroadcastRun.id == run_id, BroadcastRun.status == "planning")
            .where(or_(BroadcastRun.claimed_until.is_(None), BroadcastRun.claimed_until < now))
            .values(claimed_until=now + LEASE)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def plan_run(runtime: Runtime, run_id: int, batch: int = 1000) -> PlanResult:
    """Plans the run's recipients from where it left off, then hands it to sending."""
    now = runtime.clock()
    if not _take(runtime, run_id, now):
        return PlanResult("busy")
    with runtime.db.read() as session:
        run = session.get(BroadcastRun, run_id)
        assert run is not None
        broadcast = session.get(Broadcast, run.broadcast_id)
        assert broadcast is not None
    message = message_of(broadcast, invitation(runtime, broadcast))
    audience = Audience.from_json(broadcast.audience)
    table: Table = Message.__table__  # type: ignore[assignment]
    insert = postgresql.insert if runtime.db.engine.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.broadcast_run_id, table.c.contact_id])
        .returning(table.c.id)
    )
    planned = run.planned
    for contacts in stream(runtime.db, audience, after_id=run.planned_through, batch=batch):
        now = runtime.clock()
        rows = [_row(contact, message, run_id, now) for contact in contacts]
        with runtime.db.begin() as conn:
            still = conn.execute(
                select(BroadcastRun.status).where(BroadcastRun.id == run_id)
            ).scalar_one()
            if still != "planning":  # canceled meanwhile
                return PlanResult("stopped", planned)
            planned += len(conn.execute(statement, rows).all())
            conn.execute(
                update(BroadcastRun)
                .where(BroadcastRun.id == run_id)
                .values(
                    planned_through=contacts[-1].id,
                    planned=planned,
                    claimed_until=now + LEASE,
                )
            )
    now = runtime.clock()
    with runtime.db.write() as session:
        session.execute(
            update(BroadcastRun)
            .where(BroadcastRun.id == run_id, BroadcastRun.status == "planning")
            .values(status="sending", started_at=now, claimed_until=None)
        )
    log.info("broadcast run %s planned: %s messages", run_id, planned)
    runtime.enqueue_broadcast_send(run_id)
    return PlanResult("planned", planned)


def _row(contact: Any, message: Any, run_id: int, now: datetime) -> dict[str, Any]:
    chosen = route(contact, message, now)
    extra = None
    if chosen.content_sid:
        extra = {"content_sid": chosen.content_sid, "content_variables": {"1": chosen.body}}
    return {
        "contact_id": contact.id,
        "direction": "out",
        "channel": chosen.channel or contact.channel,
        "body": chosen.body,
        "status": SKIPPED if chosen.skip else PLANNED,
        "kind": "broadcast",
        "language": chosen.language,
        "segments": chosen.segments,
        "allow_opted_out": False,
        "broadcast_run_id": run_id,
        "attempts": 0,
        "num_media": 0,
        "extra": extra,
        "error_message": chosen.skip,
        "created_at": now,
        "updated_at": now,
    }
