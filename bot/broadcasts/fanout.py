"""Fan-out: a run becomes one outbox row per recipient, streamed and resumable.

Rows are inserted in batches with the run's progress (the last contact id planned) in the
same transaction, and (run, contact) is unique, so a crash or a second worker mid-fan-out
never plans anyone twice and never skips anyone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.broadcasts.audience import Audience, stream
from bot.broadcasts.ports import BroadcastPorts
from bot.broadcasts.routing import route
from bot.broadcasts.service import invitation, message_of
from bot.channel_order import Routes
from bot.core.status import MessageStatus
from bot.db.database import Database
from bot.db.models import Broadcast, BroadcastRun, Message
from bot.outbox import outbound_row

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class PlanResult:
    state: str  # planned, busy, stopped
    planned: int = 0


def _take(ports: BroadcastPorts, run_id: int, now: datetime) -> bool:
    with ports.db.write() as session:
        taken = session.execute(
            update(BroadcastRun)
            .where(BroadcastRun.id == run_id, BroadcastRun.status == "planning")
            .where(or_(BroadcastRun.claimed_until.is_(None), BroadcastRun.claimed_until < now))
            .values(claimed_until=now + LEASE)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def plan_run(ports: BroadcastPorts, run_id: int, batch: int = 1000) -> PlanResult:
    """Plans the run's recipients from where it left off, then hands it to sending."""
    now = ports.clock()
    if not _take(ports, run_id, now):
        return PlanResult("busy")
    with ports.db.read() as session:
        run = session.get(BroadcastRun, run_id)
        assert run is not None
        broadcast = session.get(Broadcast, run.broadcast_id)
        assert broadcast is not None
    message = message_of(broadcast, invitation(ports, broadcast))
    audience = Audience.from_json(broadcast.audience)
    table: Table = Message.__table__  # type: ignore[assignment]
    insert = postgresql.insert if ports.db.engine.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.broadcast_run_id, table.c.contact_id])
        .returning(table.c.id)
    )
    planned = run.planned
    routes = ports.routes or Routes(ports.settings.channel_order)
    for contacts in stream(ports.db, audience, after_id=run.planned_through, batch=batch):
        now = ports.clock()
        rows = [_row(contact, message, run_id, now, routes) for contact in contacts]
        with ports.db.begin() as conn:
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
    now = ports.clock()
    with ports.db.write() as session:
        session.execute(
            update(BroadcastRun)
            .where(BroadcastRun.id == run_id, BroadcastRun.status == "planning")
            .values(status="sending", started_at=now, claimed_until=None)
        )
    log.info("broadcast run %s planned: %s messages", run_id, planned)
    ports.tasks.enqueue_send(run_id)
    return PlanResult("planned", planned)


def _row(
    contact: Any,
    message: Any,
    run_id: int,
    now: datetime,
    routes: Routes | None = None,
) -> dict[str, Any]:
    # Each row names the contact's preferred route, whatever is down now: while it is down the
    # outbox moves the message to the next route at send time (bot/failover.py), and once it
    # is back (its probe is one of these messages) the rest go by it again.
    chosen = route(contact, message, now, routes)
    extra: dict[str, Any] | None = None
    if chosen.content_sid:
        extra = {"content_sid": chosen.content_sid, "content_variables": {"1": chosen.body}}
    if chosen.template:  # for the outbox, should failover move it to WhatsApp
        extra = {**(extra or {}), "template": chosen.template}
    channel = chosen.channel or contact.channel
    # Routing priced the message (a WhatsApp message is one unit, a skipped one nothing).
    return outbound_row(
        contact.id,
        channel,
        chosen.body,
        chosen.language,
        "broadcast",
        now,
        status=MessageStatus.SKIPPED if chosen.skip else MessageStatus.PLANNED,
        segments=chosen.segments,
        # The route routing chose: the way the contact last wrote, else CHANNEL_ORDER's.
        provider=chosen.provider,
        broadcast_run_id=run_id,
        extra=extra,
        error_message=chosen.skip,
    )


def stalled_runs(db: Database, now: datetime, limit: int) -> list[tuple[int, str]]:
    """Runs planning or sending that nobody holds (their worker died): (id, status)."""
    with db.read() as session:
        return [
            (run_id, status)
            for run_id, status in session.execute(
                select(BroadcastRun.id, BroadcastRun.status)
                .where(BroadcastRun.status.in_(("planning", "sending")))
                .where((BroadcastRun.claimed_until.is_(None)) | (BroadcastRun.claimed_until < now))
                .limit(limit)
            )
        ]
