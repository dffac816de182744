"""Conversation queries: the list (contacts by their latest message), search, and threads.

Every list is keyset-paginated: a page asks for the rows after the last one it showed, so
page 1,000 costs what page 1 does. The list walks `ix_contacts_last_inbound_at_id`; filters
are index probes per contact; text search uses a trigram index on PostgreSQL and, on SQLite,
a scan newest first in windows of SEARCH_WINDOW messages, so a page's cost does not grow with
the table (README: dashboard benchmark).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, exists, func, literal, select, tuple_
from sqlalchemy.orm import Session

from bot.db.models import Contact, Message, UnansweredQuestion, UTCDateTime
from dashboard.access import contact_visible
from dashboard.accounts import Account

CHANNELS = ("sms", "whatsapp", "simulator")
LANGUAGES = ("en", "ne")
MIN_SEARCH = 3
MAX_SEARCH = 100
# A phone search with at most this many matches fetches them by id.
PHONE_IDS = 500
# A text search looks at this many messages (newest first) per page at most: on SQLite it
# scans, so a page costs the same however large the table grows.
SEARCH_WINDOW = 250_000
THREAD_PAGE = 100
T = TypeVar("T")


class FilterError(ValueError):
    """A filter value the list cannot use; the message is shown to the person."""


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Filters:
    """What the conversation list is narrowed to (all optional)."""

    phone: str | None = None  # digits anywhere in the number
    text: str | None = None  # words in what the person wrote
    since: datetime | None = None  # from this moment
    until: datetime | None = None  # up to (not including) this moment
    channel: str | None = None
    language: str | None = None
    topic: str | None = None  # an NLU intent, e.g. faq_meaning
    unanswered: bool = False

    @classmethod
    def build(
        cls,
        phone: str = "",
        text: str = "",
        since: date | None = None,
        until: date | None = None,
        channel: str | None = None,
        language: str | None = None,
        topic: str | None = None,
        unanswered: bool = False,
        zone: tzinfo = UTC,
    ) -> Filters:
        """Checks and normalizes what the person typed.

        Args:
            phone: digits of a phone number (anything else is ignored).
            text: words to find in what people wrote.
            since: the first day, in `zone`.
            until: the last day (included), in `zone`.
            channel: sms, whatsapp or simulator.
            language: en or ne.
            topic: an NLU intent.
            unanswered: only conversations with questions waiting for review.
            zone: the time zone the days are in.

        Raises:
            FilterError: a search that is too short or too long.
        """
        digits = re.sub(r"\D", "", phone)
        if phone.strip() and len(digits) < MIN_SEARCH:
            raise FilterError(f"type at least {MIN_SEARCH} digits of the phone number")
        words = " ".join(text.split())
        if words and len(words) < MIN_SEARCH:
            raise FilterError(f"type at least {MIN_SEARCH} characters to search messages")
        if len(words) > MAX_SEARCH:
            raise FilterError(f"search for at most {MAX_SEARCH} characters")
        if since and until and until < since:
            raise FilterError("the end date is before the start date")
        return cls(
            digits[:16] or None,
            words or None,
            local_midnight(since, zone) if since else None,
            local_midnight(until + timedelta(days=1), zone) if until else None,
            channel,
            language,
            topic,
            unanswered,
        )

    def contact_conditions(self, session: Session) -> list[ColumnElement[bool]]:
        """The conditions on the contacts table (simulated or not, channel, language, phone)."""
        c = Contact.__table__.c
        conditions: list[ColumnElement[bool]] = [c.simulated.is_(self.channel == "simulator")]
        if self.channel:
            conditions.append(c.channel == self.channel)
        if self.language:
            conditions.append(c.language == self.language)
        if self.phone:
            conditions.append(_phone_matches(session, self.phone))
        return conditions


def _phone_matches(session: Session, digits: str) -> ColumnElement[bool]:
    """Contacts whose number contains `digits`.

    A few matches (most searches) are looked up once in the phone index and then fetched by
    id; many matches ("98") are found fastest while walking the list in its order.
    """
    c = Contact.__table__.c
    matches = c.phone.like(_like_pattern(digits), escape="\\")
    ids = session.scalars(select(c.id).where(matches).limit(PHONE_IDS + 1)).all()
    return c.id.in_(ids) if len(ids) <= PHONE_IDS else matches


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The start of `day` in `zone`, as an aware UTC time."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Cursor:
    """Where a page of the conversation list ends: (latest message time, contact id)."""

    at: datetime
    id: int

    def encode(self) -> str:
        micros = (self.at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return f"{micros}.{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        """Parses `encode`'s form; raises ValueError for anything else."""
        micros, sep, ident = raw.partition(".")
        if not sep or not micros.isdigit() or not ident.isdigit() or len(raw) > 40:
            raise ValueError(f"not a page cursor: {raw[:40]!r}")
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
        return cls(at, int(ident))


@dataclass(frozen=True)
class ConversationRow:
    """One contact in the conversation list, with their latest message."""

    contact_id: int
    phone: str
    name: str | None
    channel: str
    language: str | None
    opted_out: bool
    paused_until: datetime | None
    last_inbound_at: datetime
    last_body: str
    last_direction: str
    last_intent: str | None
    last_status: str | None
    unanswered: bool


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and the cursor of the next one (None on the last page).

    `searched_to` is set when a search stopped at the end of its window before filling the
    page: it looked at messages back to that time, and the cursor continues further back.
    """

    rows: list[T]
    next_cursor: str | None
    searched_to: datetime | None = None


def list_conversations(
    session: Session,
    viewer: Account,
    filters: Filters,
    after: Cursor | None = None,
    limit: int = 50,
) -> Page[ConversationRow]:
    """Contacts who wrote to us, latest first, narrowed by `filters` and the viewer's scope."""
    c = Contact.__table__.c
    conditions = [c.last_inbound_at.is_not(None), *filters.contact_conditions(session)]
    conditions.append(contact_visible(viewer, c.id))
    if filters.since:
        conditions.append(c.last_inbound_at >= filters.since)
    if filters.until:
        conditions.append(c.last_inbound_at < filters.until)
    if filters.topic:
        m = Message.__table__.c
        conditions.append(exists().where(m.contact_id == c.id, m.intent == filters.topic))
    if filters.unanswered:
        u = UnansweredQuestion.__table__.c
        conditions.append(exists().where(u.contact_id == c.id, u.status == "open"))
    if after is not None:
        # A row-value comparison: both databases walk the index from there (an OR of the two
        # cases makes SQLite merge two index scans and sort).
        conditions.append(
            tuple_(c.last_inbound_at, c.id) < tuple_(literal(after.at, UTCDateTime()), after.id)
        )
    rows = session.execute(
        select(
            c.id,
            c.phone,
            c.profile_name,
            c.channel,
            c.language,
            c.opted_out,
            c.paused_until,
            c.last_inbound_at,
        )
        .where(*conditions)
        .order_by(c.last_inbound_at.desc(), c.id.desc())
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [r.id for r in rows]
    latest = _latest_messages(session, ids)
    waiting = _open_unanswered(session, ids)
    page = [
        ConversationRow(
            contact_id=r.id,
            phone=r.phone,
            name=r.profile_name,
            channel=r.channel,
            language=r.language,
            opted_out=r.opted_out,
            paused_until=r.paused_until,
            last_inbound_at=r.last_inbound_at,
            last_body=latest[r.id].body if r.id in latest else "",
            last_direction=latest[r.id].direction if r.id in latest else "in",
            last_intent=latest[r.id].intent if r.id in latest else None,
            last_status=latest[r.id].status if r.id in latest else None,
            unanswered=r.id in waiting,
        )
        for r in rows
    ]
    cursor = Cursor(rows[-1].last_inbound_at, rows[-1].id).encode() if more and rows else None
    return Page(page, cursor)


def _latest_messages(session: Session, contact_ids: Sequence[int]) -> dict[int, Any]:
    if not contact_ids:
        return {}
    m = Message.__table__.c
    newest = select(func.max(m.id)).where(m.contact_id.in_(contact_ids)).group_by(m.contact_id)
    rows = session.execute(
        select(m.contact_id, m.body, m.direction, m.intent, m.status).where(m.id.in_(newest))
    )
    return {r.contact_id: r for r in rows}


def _open_unanswered(session: Session, contact_ids: Sequence[int]) -> set[int]:
    if not contact_ids:
        return set()
    u = UnansweredQuestion.__table__.c
    return set(
        session.scalars(
            select(u.contact_id).where(u.contact_id.in_(contact_ids), u.status == "open").distinct()
        )
    )


@dataclass(frozen=True)
class SearchHit:
    """A message that matched a text search."""

    message_id: int
    contact_id: int
    phone: str
    name: str | None
    body: str
    created_at: datetime
    channel: str
    intent: str | None
    confidence: float | None


def search_messages(
    session: Session,
    viewer: Account,
    filters: Filters,
    before_id: int | None = None,
    limit: int = 50,
) -> Page[SearchHit]:
    """What people wrote that contains `filters.text`, newest first (keyset on message id)."""
    assert filters.text
    m = Message.__table__.c
    c = Contact.__table__.c
    pattern = _like_pattern(filters.text)
    postgres = session.get_bind().dialect.name == "postgresql"
    # PostgreSQL: ILIKE on the trigram index (inbound only). SQLite: LIKE is already
    # case-insensitive for ASCII, and lower() on every row would only slow the scan.
    matches = m.body.ilike(pattern, escape="\\") if postgres else m.body.like(pattern, escape="\\")
    conditions: list[ColumnElement[bool]] = [
        m.direction == "in",
        matches,
        *filters.contact_conditions(session),
        contact_visible(viewer, m.contact_id),
    ]
    if filters.channel:
        conditions.append(m.channel == filters.channel)
    if filters.since:
        conditions.append(m.created_at >= filters.since)
    if filters.until:
        conditions.append(m.created_at < filters.until)
    if filters.topic:
        conditions.append(m.intent == filters.topic)
    if filters.unanswered:
        u = UnansweredQuestion.__table__.c
        conditions.append(exists().where(u.message_id == m.id, u.status == "open"))
    if postgres:
        # The trigram index finds the matches; bounding the ids would only tempt the
        # planner into scanning the primary key instead.
        floor = 0
        if before_id is not None:
            conditions.append(m.id < before_id)
    else:
        top = before_id - 1 if before_id is not None else session.scalar(select(func.max(m.id)))
        if top is None or top < 1:
            return Page([], None)
        floor = max(top - SEARCH_WINDOW, 0)
        conditions += [m.id <= top, m.id > floor]
    rows = session.execute(
        select(
            m.id,
            m.contact_id,
            c.phone,
            c.profile_name,
            m.body,
            m.created_at,
            m.channel,
            m.intent,
            m.confidence,
        )
        .join(Contact.__table__, c.id == m.contact_id)
        .where(*conditions)
        .order_by(m.id.desc())
        .limit(limit + 1)
    ).all()
    hits = [
        SearchHit(
            r.id,
            r.contact_id,
            r.phone,
            r.profile_name,
            r.body,
            r.created_at,
            r.channel,
            r.intent,
            r.confidence,
        )
        for r in rows[:limit]
    ]
    if len(rows) > limit:
        return Page(hits, str(hits[-1].message_id))
    if floor == 0:
        return Page(hits, None)
    # The window ended first: say how far back it looked, and continue from there.
    reached = session.scalar(select(m.created_at).where(m.id > floor).order_by(m.id).limit(1))
    return Page(hits, str(floor + 1), reached)


def _sent_by(extra: Any) -> str | None:
    by = extra.get("by") if isinstance(extra, dict) else None
    return str(by) if by is not None else None


@dataclass(frozen=True)
class ThreadMessage:
    """One message in a contact's thread."""

    id: int
    direction: str
    body: str
    created_at: datetime
    status: str
    kind: str | None
    intent: str | None
    confidence: float | None
    error_code: int | None
    segments: int | None
    sent_by: str | None
    unanswered_reason: str | None
    unanswered_status: str | None
    candidates: list[Any] | None


def thread(
    session: Session, contact_id: int, before_id: int | None = None, limit: int = THREAD_PAGE
) -> tuple[list[ThreadMessage], int | None]:
    """A contact's messages, oldest first, up to `limit` before `before_id`.

    Returns the messages and the id to pass as `before_id` for older ones (None when there
    are none). The caller checks the viewer may see the contact.
    """
    m = Message.__table__.c
    u = UnansweredQuestion.__table__.c
    conditions: list[ColumnElement[bool]] = [m.contact_id == contact_id]
    if before_id is not None:
        conditions.append(m.id < before_id)
    rows = session.execute(
        select(
            m.id,
            m.direction,
            m.body,
            m.created_at,
            m.status,
            m.kind,
            m.intent,
            m.confidence,
            m.error_code,
            m.segments,
            m.extra,
        )
        .where(*conditions)
        .order_by(m.id.desc())
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [r.id for r in rows if r.direction == "in"]
    review: dict[int, Any] = {}
    if ids:
        review = {
            r.message_id: r
            for r in session.execute(
                select(u.message_id, u.reason, u.status, u.candidates).where(u.message_id.in_(ids))
            )
        }
    messages = [
        ThreadMessage(
            r.id,
            r.direction,
            r.body,
            r.created_at,
            r.status,
            r.kind,
            r.intent,
            r.confidence,
            r.error_code,
            r.segments,
            _sent_by(r.extra),
            review[r.id].reason if r.id in review else None,
            review[r.id].status if r.id in review else None,
            review[r.id].candidates if r.id in review else None,
        )
        for r in reversed(rows)
    ]
    return messages, (rows[-1].id if more and rows else None)
