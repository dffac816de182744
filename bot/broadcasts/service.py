"""Broadcasts as the dashboard, the command line and mobilizers' SMS use them."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bot.broadcasts.audience import Audience, AudienceError
from bot.broadcasts.ports import BroadcastPorts
from bot.broadcasts.rights import actor_by, may_manage, refusal, shortest_gap
from bot.broadcasts.routing import Message as BroadcastMessage
from bot.broadcasts.routing import Preview, preview
from bot.core.status import MessageStatus
from bot.db.models import AuditEvent, Broadcast, BroadcastRun, Message

log = logging.getLogger(__name__)

DRAFT = "draft"
SCHEDULED = "scheduled"
# A mobilizer's recurring broadcast, confirmed, waiting for a coordinator's approval.
PENDING_APPROVAL = "pending_approval"
SENDING = "sending"
SENT = "sent"
BROADCAST_CANCELED = "canceled"
SCHEDULES = ("now", "once", "recurring")
DAYS = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}


class BroadcastError(ValueError):
    """A broadcast cannot be created or changed as asked; the message says why."""


def parse_every(text: str) -> str:
    """A recurring schedule as a crontab line (local time).

    Accepts a crontab line ("0 8 * * sun") or "DAY HH:MM" where DAY is daily, weekdays or
    mon…sun (comma-separated): "sun 08:00", "mon,thu 18:30", "daily 07:15".
    """
    text = " ".join(text.lower().split())
    if len(text.split()) == 5:
        try:
            CronTrigger.from_crontab(text)
        except ValueError as exc:
            raise BroadcastError(f"not a crontab line: {text!r} ({exc})") from None
        return text
    parts = text.removeprefix("every ").split()
    if len(parts) != 2 or ":" not in parts[1]:
        raise BroadcastError(f"expected 'DAY HH:MM' like 'sun 08:00', got {text!r}")
    days, clock = parts
    hour, _, minute = clock.partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
        raise BroadcastError(f"not a time of day: {clock!r}")
    day_names = {"daily": "*", "weekdays": "mon-fri"}.get(days)
    if day_names is None:
        wanted = [d[:3] for d in days.split(",")]
        if not all(d in DAYS for d in wanted):
            raise BroadcastError(f"not a day: {days!r} (use mon…sun, daily or weekdays)")
        day_names = ",".join(wanted)
    return f"{int(minute)} {int(hour)} * * {day_names}"


@dataclass(frozen=True)
class Draft:
    """What a new broadcast says, to whom and when."""

    title: str
    body_en: str
    body_ne: str
    audience: Audience = field(default_factory=Audience)
    schedule: str = "now"
    send_at: datetime | None = None  # for "once" (aware)
    every: str | None = None  # for "recurring": "sun 08:00" or a crontab line
    survey_key: str | None = None
    template_en: str | None = None
    template_ne: str | None = None


def _check(ports: BroadcastPorts, draft: Draft) -> tuple[str | None]:
    if not draft.title.strip():
        raise BroadcastError("the title is empty")
    for name in ("body_en", "body_ne"):
        body = getattr(draft, name)
        if not body.strip():
            raise BroadcastError(f"the {name[-2:]} message is empty")
        if len(body) > 1600:
            raise BroadcastError(f"the {name[-2:]} message is longer than 1600 characters")
    if draft.schedule not in SCHEDULES:
        raise BroadcastError(f"schedule must be one of {', '.join(SCHEDULES)}")
    if draft.schedule == "once":
        if draft.send_at is None or draft.send_at.tzinfo is None:
            raise BroadcastError("a 'once' broadcast needs a send time with its time zone")
        if draft.send_at <= ports.clock():
            raise BroadcastError("the send time is in the past")
    cron = None
    if draft.schedule == "recurring":
        if not draft.every:
            raise BroadcastError("a recurring broadcast needs --every, like 'sun 08:00'")
        cron = parse_every(draft.every)
    if draft.survey_key is not None and ports.surveys.survey(draft.survey_key) is None:
        raise BroadcastError(f"no survey {draft.survey_key!r}")
    return (cron,)


def _check_interval(ports: BroadcastPorts, cron: str, created_by: str) -> None:
    """A mobilizer's recurring broadcast may not go out more often than the setting allows."""
    with ports.db.read() as session:
        actor = actor_by(session, created_by)
    if actor is None or actor.staff:
        return
    hours = ports.settings.mobilizer_min_interval_hours
    gap = shortest_gap(cron, ports.settings.timezone, ports.clock())
    if gap is not None and gap < timedelta(hours=hours):
        raise BroadcastError(
            f"a mobilizer's recurring broadcast may go out at most once every {hours} hours"
        )


def create(
    ports: BroadcastPorts,
    draft: Draft,
    created_by: str,
    source_sid: str | None = None,
) -> int:
    """Stores a broadcast as a draft; `send_now` or `confirm` starts it. Returns its id.

    `source_sid` (the SMS that asked for it) makes a repeated webhook return the same draft.
    """
    (cron,) = _check(ports, draft)
    if cron is not None:
        _check_interval(ports, cron, created_by)
    now = ports.clock()
    row = Broadcast(
        title=draft.title.strip()[:200],
        body_en=draft.body_en.strip(),
        body_ne=draft.body_ne.strip(),
        audience=draft.audience.to_json(),
        schedule=draft.schedule,
        send_at=draft.send_at.astimezone(UTC) if draft.send_at else None,
        cron=cron,
        timezone=ports.settings.timezone,
        survey_key=draft.survey_key,
        template_en=draft.template_en or None,
        template_ne=draft.template_ne or None,
        status=DRAFT,
        created_by=created_by[:200],
        source_sid=source_sid,
        created_at=now,
        updated_at=now,
    )
    try:
        with ports.db.write() as session:
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        with ports.db.read() as session:
            existing = session.scalar(
                select(Broadcast.id).where(Broadcast.source_sid == source_sid)
            )
        if existing is None:
            raise
        return existing


def get(ports: BroadcastPorts, broadcast_id: int) -> Broadcast:
    with ports.db.read() as session:
        row = session.get(Broadcast, broadcast_id)
    if row is None:
        raise BroadcastError(f"no broadcast {broadcast_id}")
    return row


def message_of(row: Broadcast, invite: str | None = None) -> BroadcastMessage:
    """The texts recipients get, with the survey invitation line when there is one."""
    en, ne = row.body_en, row.body_ne
    if invite:
        en, ne = f"{en}\n{invite.split('|')[0]}", f"{ne}\n{invite.split('|')[-1]}"
    return BroadcastMessage(en, ne, row.template_en, row.template_ne)


def invitation(ports: BroadcastPorts, row: Broadcast) -> str | None:
    """ "Reply SURVEY…" in both languages ("en|ne"), when the broadcast invites to a survey."""
    if not row.survey_key:
        return None
    texts = ports.texts
    from bot.core.messages import Language

    named = "" if row.survey_key == ports.surveys.default_survey_key else f" {row.survey_key}"
    en = texts.get("broadcast_survey_invite", Language.EN).format(key=named)
    ne = texts.get("broadcast_survey_invite", Language.NE).format(key=named)
    return f"{en}|{ne}"


def preview_of(ports: BroadcastPorts, broadcast_id: int) -> Preview:
    """The preview of a stored broadcast, as if sent now."""
    row = get(ports, broadcast_id)
    return preview(
        ports.db,
        ports.settings,
        Audience.from_json(row.audience),
        message_of(row, invitation(ports, row)),
        ports.clock(),
        ports.routes,
    )


def preview_draft(ports: BroadcastPorts, draft: Draft) -> Preview:
    """The preview of a broadcast not stored yet (the dashboard's live preview)."""
    message = BroadcastMessage(draft.body_en, draft.body_ne, draft.template_en, draft.template_ne)
    return preview(ports.db, ports.settings, draft.audience, message, ports.clock(), ports.routes)


def _check_manager(ports: BroadcastPorts, row: Broadcast, by: str | None, verb: str) -> None:
    """`by` (an account's email; None for the command line) may confirm or cancel `row`."""
    if by is None:
        return
    with ports.db.read() as session:
        actor = actor_by(session, by)
    if actor is None or not may_manage(actor, row):
        raise BroadcastError(f"only its creator or a coordinator may {verb} broadcast {row.id}")


def confirm(ports: BroadcastPorts, broadcast_id: int, by: str | None = None) -> str:
    """Starts a draft: "now" sends at once, the others are handed to the scheduler.

    Args:
        ports: what the service works through (`runtime.broadcasts`).
        broadcast_id: the draft.
        by: the account confirming it (its creator or staff); None for the command line.

    Returns:
        The new status: sending, scheduled, or pending_approval for a mobilizer's recurring
        broadcast (a coordinator approves it with `approve`).
    """
    row = get(ports, broadcast_id)
    if row.status != DRAFT:
        raise BroadcastError(f"broadcast {broadcast_id} is {row.status}, not a draft")
    _check_manager(ports, row, by, "confirm")
    with ports.db.read() as session:
        creator, reason = refusal(session, row, approval_needed=False)
    if reason is not None:
        raise BroadcastError(f"broadcast {broadcast_id} cannot go out: {reason}")
    mobilizers = row.schedule == "recurring" and creator is not None and not creator.staff
    if mobilizers and not row.approved_by:
        _set_status(ports, broadcast_id, PENDING_APPROVAL, expect=DRAFT)
        return PENDING_APPROVAL
    if row.schedule == "now":
        start_run(ports, broadcast_id, ports.clock())
        return SENDING
    _set_status(ports, broadcast_id, SCHEDULED, expect=DRAFT)
    return SCHEDULED


def approve(ports: BroadcastPorts, broadcast_id: int, by: str) -> str:
    """A coordinator approves a mobilizer's recurring broadcast: it is scheduled."""
    row = get(ports, broadcast_id)
    if row.status != PENDING_APPROVAL:
        raise BroadcastError(f"broadcast {broadcast_id} is {row.status}, not waiting for approval")
    with ports.db.read() as session:
        approver = actor_by(session, by)
        _, reason = refusal(session, row, approval_needed=False)
    if approver is None or not approver.active or not approver.staff:
        raise BroadcastError("only a coordinator or an admin may approve a broadcast")
    if reason is not None:
        raise BroadcastError(f"broadcast {broadcast_id} cannot go out: {reason}")
    if not _set_status(
        ports, broadcast_id, SCHEDULED, expect=PENDING_APPROVAL, approved_by=approver.email
    ):
        raise BroadcastError(f"broadcast {broadcast_id} changed meanwhile; look again")
    return SCHEDULED


def expire_drafts(ports: BroadcastPorts) -> int:
    """Cancels drafts asked for by SMS that were not confirmed in time. Returns how many."""
    now = ports.clock()
    oldest = now - timedelta(minutes=ports.settings.broadcast_confirm_minutes)
    with ports.db.write() as session:
        result = session.execute(
            update(Broadcast)
            .where(
                Broadcast.status == DRAFT,
                Broadcast.confirm_code_hash.is_not(None),
                Broadcast.created_at < oldest,
            )
            .values(status=BROADCAST_CANCELED, canceled_at=now, updated_at=now)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _set_status(
    ports: BroadcastPorts,
    broadcast_id: int,
    status: str,
    expect: str | None,
    approved_by: str | None = None,
) -> bool:
    now = ports.clock()
    with ports.db.write() as session:
        query = update(Broadcast).where(Broadcast.id == broadcast_id)
        if expect is not None:
            query = query.where(Broadcast.status == expect)
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if approved_by is not None:
            values["approved_by"] = approved_by
        if status == BROADCAST_CANCELED:
            values["canceled_at"] = now
        changed: int = session.execute(query.values(**values)).rowcount  # type: ignore[attr-defined]
        return changed == 1


def start_run(ports: BroadcastPorts, broadcast_id: int, scheduled_for: datetime) -> int | None:
    """Creates the run for one occurrence (once per broadcast and time) and plans it.

    Returns the run id, or None when the broadcast was canceled.
    """
    row = get(ports, broadcast_id)
    if row.status in (BROADCAST_CANCELED, PENDING_APPROVAL):
        return None
    with ports.db.read() as session:
        _, reason = refusal(session, row)
    if reason is not None:  # rights are checked again whenever it fires
        _refuse_at_fire(ports, row, reason)
        return None
    now = ports.clock()
    scheduled_for = scheduled_for.astimezone(UTC).replace(microsecond=0)
    try:
        with ports.db.write() as session:
            run = BroadcastRun(
                broadcast_id=broadcast_id,
                scheduled_for=scheduled_for,
                status="planning",
                planned_through=0,
                planned=0,
                created_at=now,
            )
            session.add(run)
            session.flush()
            run_id = run.id
            if row.schedule != "recurring":
                session.execute(
                    update(Broadcast)
                    .where(Broadcast.id == broadcast_id, Broadcast.status != BROADCAST_CANCELED)
                    .values(status=SENDING, updated_at=now)
                )
    except IntegrityError:  # this occurrence already has its run: nothing to do
        log.info("broadcast %s run at %s exists already", broadcast_id, scheduled_for)
        return None
    ports.tasks.enqueue_plan(run_id)
    return run_id


def _refuse_at_fire(ports: BroadcastPorts, row: Broadcast, reason: str) -> None:
    """Cancels a broadcast its creator may no longer send, and says so in the audit log."""
    log.warning("broadcast %s canceled when it fired: %s", row.id, reason)
    cancel(ports, row.id)
    with ports.db.write() as session:
        session.add(
            AuditEvent(
                actor="scheduler",
                action="broadcast_refused_at_fire",
                detail={"broadcast_id": row.id, "created_by": row.created_by, "reason": reason},
                created_at=ports.clock(),
            )
        )


def cancel(ports: BroadcastPorts, broadcast_id: int, by: str | None = None) -> int:
    """Cancels a broadcast: nothing not yet handed to Twilio goes out. Returns how many
    planned messages were canceled. `by` (an account's email) must be its creator or staff;
    None is the service itself or the command line."""
    row = get(ports, broadcast_id)
    if row.status in (SENT, BROADCAST_CANCELED):
        raise BroadcastError(f"broadcast {broadcast_id} is already {row.status}")
    _check_manager(ports, row, by, "cancel")
    now = ports.clock()
    with ports.db.write() as session:
        session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id)
            .values(status=BROADCAST_CANCELED, canceled_at=now, updated_at=now)
        )
        run_ids = select(BroadcastRun.id).where(BroadcastRun.broadcast_id == broadcast_id)
        session.execute(
            update(BroadcastRun)
            .where(BroadcastRun.id.in_(run_ids), BroadcastRun.status.in_(("planning", "sending")))
            .values(status="canceled", finished_at=now)
        )
        canceled = session.execute(
            update(Message)
            .where(Message.broadcast_run_id.in_(run_ids), Message.status == MessageStatus.PLANNED)
            .values(
                status=MessageStatus.CANCELED, error_message="broadcast canceled", updated_at=now
            )
        ).rowcount  # type: ignore[attr-defined]
    return int(canceled or 0)


@dataclass
class Funnel:
    """Where a broadcast's messages are: by status, failures by Twilio error code."""

    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def stage(self, name: str) -> int:
        """Messages that reached at least `name` (queued ⊂ sent ⊂ delivered ⊂ read)."""
        order: list[str] = [
            MessageStatus.QUEUED,
            MessageStatus.SENT,
            MessageStatus.DELIVERED,
            MessageStatus.READ,
        ]
        reached = order[order.index(name) :]
        return sum(self.statuses[s] for s in reached)


def funnel(ports: BroadcastPorts, broadcast_id: int) -> Funnel:
    """The delivery funnel from status callbacks: counts per status, failure reasons."""
    runs = select(BroadcastRun.id).where(BroadcastRun.broadcast_id == broadcast_id)
    result = Funnel()
    with ports.db.read() as session:
        for status, count in session.execute(
            select(Message.status, func.count())
            .where(Message.broadcast_run_id.in_(runs))
            .group_by(Message.status)
        ):
            result.statuses[status] = count
        for code, count in session.execute(
            select(Message.error_code, func.count())
            .where(
                Message.broadcast_run_id.in_(runs),
                Message.status.in_((MessageStatus.FAILED, MessageStatus.UNDELIVERED)),
            )
            .group_by(Message.error_code)
        ):
            result.errors[int(code or 0)] = count
        for reason, count in session.execute(
            select(Message.error_message, func.count())
            .where(Message.broadcast_run_id.in_(runs), Message.status == MessageStatus.SKIPPED)
            .group_by(Message.error_message)
        ):
            result.skipped[reason or "unknown"] = count
    return result


def next_fire_time(row: Broadcast, after: datetime) -> datetime | None:
    """When a scheduled broadcast fires next (UTC), or None."""
    if row.schedule == "once":
        return row.send_at if row.send_at and row.send_at > after else None
    if row.schedule == "recurring" and row.cron:
        from zoneinfo import ZoneInfo

        trigger = CronTrigger.from_crontab(row.cron, timezone=ZoneInfo(row.timezone))
        fire = trigger.get_next_fire_time(None, after)
        return fire.astimezone(UTC) if fire else None
    return None


def occurrence(row: Broadcast, now: datetime) -> datetime:
    """The occurrence a firing at `now` stands for: its send time, or the latest cron time."""
    if row.schedule == "once" and row.send_at is not None:
        return row.send_at
    latest = now
    if row.cron:
        probe = now - timedelta(days=8)
        while (fire := next_fire_time(row, probe)) is not None and fire <= now:
            latest, probe = fire, fire + timedelta(seconds=1)
    return latest


def list_broadcasts(ports: BroadcastPorts, limit: int = 50) -> list[Broadcast]:
    with ports.db.read() as session:
        return list(session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)))


__all__ = [
    "Audience",
    "AudienceError",
    "BroadcastError",
    "Draft",
    "Funnel",
    "approve",
    "cancel",
    "confirm",
    "create",
    "expire_drafts",
    "funnel",
    "list_broadcasts",
    "parse_every",
    "preview_draft",
    "preview_of",
    "start_run",
]
