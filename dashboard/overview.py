"""The overview's figures: messages per day, opt-ins and opt-outs, top topics, unanswered rate.

Messages have no index on their time. Ids grow with time, so the first message of the window
is found by bisecting the primary key (about twenty point reads), and the counting scan covers
only the window's rows rather than the whole table.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from bot.db.models import ConsentEvent, Contact, Feedback, Message, UnansweredQuestion

# Ids may be a little out of time order (concurrent writers): bisect to an hour earlier.
SLACK = timedelta(hours=1)


@dataclass(frozen=True)
class Overview:
    """What the overview page shows, for the last `days` days."""

    days: list[date]
    inbound: list[int]
    outbound: list[int]
    opt_ins: list[int]
    opt_outs: list[int]
    unanswered_daily: list[int]
    top_topics: list[tuple[str, int]]
    questions: int
    unanswered: int
    contacts: int
    opted_out: int
    open_feedback: int
    open_review: int

    @property
    def unanswered_rate(self) -> float | None:
        """Unanswered questions per inbound message in the window."""
        return self.unanswered / self.questions if self.questions else None

    @property
    def daily_unanswered_rate(self) -> list[float]:
        """Each day's unanswered questions per inbound message, in percent."""
        return [
            round(100 * u / n, 1) if n else 0.0
            for u, n in zip(self.unanswered_daily, self.inbound, strict=True)
        ]


def first_id_since(session: Session, when: datetime) -> int:
    """The smallest message id whose time may be at or after `when` (bisecting the ids)."""
    m = Message.__table__.c
    low, high = session.execute(select(func.min(m.id), func.max(m.id))).one()
    if low is None:
        return 0
    target = when - SLACK
    while low < high:
        middle = (low + high) // 2
        row = session.execute(
            select(m.id, m.created_at).where(m.id >= middle).order_by(m.id).limit(1)
        ).one()
        if row.created_at < target:
            low = row.id + 1
        else:
            high = middle
    return int(low)


def _day_bounds(days: list[date], zone: tzinfo) -> list[datetime]:
    starts = [datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC) for d in days]
    last = days[-1] + timedelta(days=1)
    return [*starts, datetime(last.year, last.month, last.day, tzinfo=zone).astimezone(UTC)]


def compute(session: Session, now: datetime, zone: tzinfo, days: int = 14) -> Overview:
    """The overview for the `days` days up to today (in `zone`)."""
    today = now.astimezone(zone).date()
    window = [today - timedelta(days=days - 1 - i) for i in range(days)]
    bounds = _day_bounds(window, zone)
    start, end = bounds[0], bounds[-1]
    m = Message.__table__.c
    first = first_id_since(session, start)
    in_window = and_(
        m.id >= first, m.created_at >= start, m.created_at < end, m.channel != "simulator"
    )
    columns = []
    for lo, hi in itertools.pairwise(bounds):
        day = and_(m.created_at >= lo, m.created_at < hi)
        columns.append(func.count().filter(and_(day, m.direction == "in")))
        columns.append(func.count().filter(and_(day, m.direction == "out")))
    counts = session.execute(select(*columns).where(in_window)).one()
    inbound = [int(counts[2 * i]) for i in range(days)]
    outbound = [int(counts[2 * i + 1]) for i in range(days)]

    e = ConsentEvent.__table__.c
    consent_columns = []
    for lo, hi in itertools.pairwise(bounds):
        day = and_(e.created_at >= lo, e.created_at < hi)
        consent_columns.append(func.count().filter(and_(day, e.opted_out.is_(False))))
        consent_columns.append(func.count().filter(and_(day, e.opted_out.is_(True))))
    consent = session.execute(
        select(*consent_columns).where(e.created_at >= start, e.created_at < end)
    ).one()

    topics = session.execute(
        select(m.intent, func.count())
        .where(in_window, m.direction == "in", m.intent.like("faq\\_%", escape="\\"))
        .group_by(m.intent)
        .order_by(func.count().desc(), m.intent)
        .limit(10)
    ).all()
    u = UnansweredQuestion.__table__.c
    c = Contact.__table__.c
    f = Feedback.__table__.c
    unanswered_columns = [
        func.count().filter(and_(u.created_at >= lo, u.created_at < hi))
        for lo, hi in itertools.pairwise(bounds)
    ]
    unanswered_daily = session.execute(
        select(*unanswered_columns).where(u.created_at >= start, u.created_at < end)
    ).one()
    return Overview(
        days=window,
        inbound=inbound,
        outbound=outbound,
        opt_ins=[int(consent[2 * i]) for i in range(days)],
        opt_outs=[int(consent[2 * i + 1]) for i in range(days)],
        unanswered_daily=[int(n) for n in unanswered_daily],
        top_topics=[(str(intent), int(count)) for intent, count in topics],
        questions=sum(inbound),
        unanswered=sum(int(n) for n in unanswered_daily),
        contacts=int(session.scalar(select(func.count()).where(c.simulated.is_(False))) or 0),
        opted_out=int(
            session.scalar(
                select(func.count()).where(c.simulated.is_(False), c.opted_out.is_(True))
            )
            or 0
        ),
        open_feedback=int(
            session.scalar(select(func.count()).where(f.status.in_(("new", "in_review")))) or 0
        ),
        open_review=int(session.scalar(select(func.count()).where(u.status == "open")) or 0),
    )
