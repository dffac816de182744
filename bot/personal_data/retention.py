"""Retention: message bodies, survey answers and feedback text older than RETENTION_DAYS go.

Run daily by the active broadcast scheduler (bot/broadcasts/scheduler.py) and by hand with
`bot retention sweep`. What stays after a sweep: every message row with its direction,
channel, status, timestamps, segments, intent, error code and broadcast (counts and delivery
figures), with an empty body and no media links; survey responses with their status and
times, their answers moved into anonymous per-day counts (bot/personal_data/tallies.py);
feedback with its category, status and times, without its text, place or answer. A survey
or feedback session left unfinished longer than that is dropped from the contact's state.

Work is done in batches of rows, one short transaction each, so the service keeps running.
Messages are walked by id from where the last sweep stopped (recorded in its audit event).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import null, select, update

from bot.core.status import MessageStatus
from bot.db.database import Database
from bot.db.models import AuditEvent, Contact, Feedback, Message, SurveyResponse
from bot.personal_data.tallies import fold
from bot.settings import Settings

log = logging.getLogger(__name__)

ACTION = "retention_sweep"
# Messages still on their way keep their body: an inbound one not yet handled, an outbound
# one not yet handed to the provider.
IN_FLIGHT = (
    MessageStatus.RECEIVED,
    MessageStatus.PENDING,
    MessageStatus.PLANNED,
    MessageStatus.DISPATCHING,
)


@dataclass
class RetentionReport:
    """What one sweep blanked."""

    cutoff: datetime | None
    messages: int = 0
    responses: int = 0
    feedback: int = 0
    sessions: int = 0
    through_id: int = 0

    def line(self) -> str:
        if self.cutoff is None:
            return "retention is off (RETENTION_DAYS=0): nothing swept"
        return (
            f"before {self.cutoff.isoformat()}: {self.messages} message bodies, "
            f"{self.responses} survey responses' answers, {self.feedback} feedback texts, "
            f"{self.sessions} unfinished sessions removed"
        )


def _watermark(db: Database) -> int:
    """The message id the last sweep reached: every message up to it is done."""
    with db.read() as session:
        detail = session.scalar(
            select(AuditEvent.detail)
            .where(AuditEvent.action == ACTION)
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
    try:
        return int((detail or {}).get("through_id") or 0)
    except (TypeError, ValueError):
        return 0


def _without_template_text(extra: Any) -> Any:
    """A message's `extra` without the template variables (they repeat the body)."""
    if isinstance(extra, dict) and "content_variables" in extra:
        return {k: v for k, v in extra.items() if k != "content_variables"}
    return extra


def sweep_messages(db: Database, cutoff: datetime, batch: int = 1000) -> tuple[int, int]:
    """Blanks bodies of messages older than `cutoff`; returns (blanked, watermark).

    Rows are walked in id order from the last sweep's watermark and the walk stops at the
    first message newer than the cutoff. A message still in flight is left alone and holds
    the watermark, so the next sweep looks at it again.
    """
    position = _watermark(db)
    mark: int | None = None
    blanked = 0
    m = Message.__table__.c
    while True:
        with db.write() as session:
            rows = session.execute(
                select(m.id, m.created_at, m.status, m.body, m.media_urls, m.extra)
                .where(m.id > position)
                .order_by(m.id)
                .limit(batch)
            ).all()
            if not rows:
                break
            plain: list[int] = []
            newer = False
            for row in rows:
                if row.created_at >= cutoff:
                    newer = True
                    break
                position = row.id
                if row.status in IN_FLIGHT:
                    mark = row.id - 1 if mark is None else mark
                    continue
                extra = _without_template_text(row.extra)
                if extra is not row.extra:
                    session.execute(
                        update(Message)
                        .where(m.id == row.id)
                        .values(body="", media_urls=null(), extra=extra)
                    )
                    blanked += 1
                elif row.body or row.media_urls:
                    plain.append(row.id)
            if plain:
                session.execute(
                    update(Message).where(m.id.in_(plain)).values(body="", media_urls=null())
                )
                blanked += len(plain)
        if newer or len(rows) < batch:
            break
    return blanked, position if mark is None else mark


def sweep_responses(
    db: Database, settings: Settings, cutoff: datetime, now: datetime, batch: int = 500
) -> int:
    """Moves answers of responses last touched before `cutoff` into the tallies."""
    done = 0
    while True:
        with db.write() as session:
            rows = list(
                session.scalars(
                    select(SurveyResponse)
                    .where(SurveyResponse.redacted_at.is_(None))
                    .where(SurveyResponse.updated_at < cutoff)
                    .order_by(SurveyResponse.id)
                    .limit(batch)
                )
            )
            if not rows:
                return done
            fold(session, rows, settings.zone, whole=False)
            session.execute(
                update(SurveyResponse)
                .where(SurveyResponse.id.in_([r.id for r in rows]))
                .values(answers={}, redacted_at=now)
            )
            done += len(rows)
        if len(rows) < batch:
            return done


def sweep_feedback(db: Database, cutoff: datetime, batch: int = 500) -> int:
    """Blanks the text, place and answer of feedback older than `cutoff`."""
    done = 0
    while True:
        with db.write() as session:
            ids = list(
                session.scalars(
                    select(Feedback.id)
                    .where(Feedback.created_at < cutoff, Feedback.body != "")
                    .order_by(Feedback.id)
                    .limit(batch)
                )
            )
            if not ids:
                return done
            session.execute(
                update(Feedback)
                .where(Feedback.id.in_(ids))
                .values(body="", location=None, answer=None)
            )
            done += len(ids)
        if len(ids) < batch:
            return done


def _session_before(state: Any, cutoff: datetime) -> bool:
    """Whether a contact's state holds a session last touched before `cutoff`."""
    if not isinstance(state, dict) or not isinstance(state.get("session"), dict):
        return False
    try:
        touched = datetime.fromisoformat(str(state["session"].get("updated_at")))
    except ValueError:
        return True  # unreadable: nobody can continue it either
    return touched < cutoff


def sweep_sessions(db: Database, cutoff: datetime, now: datetime, batch: int = 500) -> int:
    """Drops survey or feedback sessions (with their answers) last touched before `cutoff`."""
    done = 0
    last = 0
    while True:
        with db.read() as session:
            rows = session.execute(
                select(Contact.id, Contact.state, Contact.version)
                .where(Contact.id > last)
                .order_by(Contact.id)
                .limit(batch)
            ).all()
        if not rows:
            return done
        stale = [row for row in rows if _session_before(row.state, cutoff)]
        if stale:
            with db.write() as session:
                for row in stale:
                    kept = {k: v for k, v in row.state.items() if k != "session"}
                    # The version check and bump: a worker that handles this contact now
                    # wins (the session is fresh again), one that read it before re-reads.
                    changed = session.execute(
                        update(Contact)
                        .where(Contact.id == row.id, Contact.version == row.version)
                        .values(state=kept or None, version=row.version + 1, updated_at=now)
                    )
                    done += int(changed.rowcount or 0)  # type: ignore[attr-defined]
        last = rows[-1].id
        if len(rows) < batch:
            return done


def sweep(
    db: Database,
    settings: Settings,
    now: datetime,
    days: int | None = None,
    batch: int = 1000,
) -> RetentionReport:
    """Runs every part of the retention sweep and records it in the audit log.

    Args:
        db: the database.
        settings: RETENTION_DAYS and the time zone.
        now: the current time (a fake clock in tests).
        days: overrides RETENTION_DAYS (0 or less: nothing is swept).
        batch: rows per transaction.
    """
    days = settings.retention_days if days is None else days
    if days <= 0:
        return RetentionReport(None)
    cutoff = now - timedelta(days=days)
    report = RetentionReport(cutoff)
    report.messages, report.through_id = sweep_messages(db, cutoff, batch)
    report.responses = sweep_responses(db, settings, cutoff, now, batch)
    report.feedback = sweep_feedback(db, cutoff, batch)
    report.sessions = sweep_sessions(db, cutoff, now, batch)
    detail = asdict(report) | {"cutoff": cutoff.isoformat(), "days": days}
    with db.write() as session:
        session.add(AuditEvent(actor="retention", action=ACTION, detail=detail, created_at=now))
    log.info("retention sweep: %s", report.line())
    return report
