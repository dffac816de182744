"""Typed SQLAlchemy 2 models. Schema changes go through Alembic (`bot/migrations`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# BIGINT ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def table_of(model: Any) -> Table:
    """A mapped class's Core table, typed (for statements that work on tables)."""
    found: Table = model.__table__
    return found


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


# Tables other libraries own in our database: APScheduler's job store creates its own.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})


def ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's include_object: leave other libraries' tables alone."""
    return not (type_ == "table" and name in FOREIGN_TABLES)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Contact(Base):
    """A person who texted us or was imported. One row per phone number (per simulator flag)."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("phone", "simulated"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str] = mapped_column(String(16))
    has_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    has_whatsapp: Mapped[bool] = mapped_column(Boolean, default=False)
    profile_name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(2))
    last_language: Mapped[str | None] = mapped_column(String(2))
    # The provider of the contact's last inbound message (None: the channel's default
    # adapter, e.g. Twilio): broadcasts to SMS contacts go out the way they last wrote.
    last_provider: Mapped[str | None] = mapped_column(String(32))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the next message may refer to (offered FAQ choices, a MORE to send).
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Bumped by every conversation-state change: concurrent workers detect each other with it.
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Where the contact lives, for broadcast audiences (imported, or set by a mobilizer).
    district: Mapped[str | None] = mapped_column(String(64), index=True)
    municipality: Mapped[str | None] = mapped_column(String(64))
    ward: Mapped[str | None] = mapped_column(String(16))
    # Human handoff: until then the bot does not answer automatically (a person does).
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Message(Base):
    """Every message in or out: the durable inbox and the outbox are this one table."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("in_reply_to_id", "seq"),
        UniqueConstraint("broadcast_run_id", "contact_id"),
        Index("ix_messages_broadcast_run_id_status_id", "broadcast_run_id", "status", "id"),
        Index("ix_messages_contact_id_id", "contact_id", "id"),
        Index("ix_messages_direction_status_id", "direction", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    channel: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text, default="")
    # Twilio's MessageSid (inbound) or the SID it gave our send (outbound). Unique: a
    # repeated webhook delivery is recognised and never processed twice.
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The provider that carried it (inbound) or sends it (outbound), e.g. "sparrow";
    # None: the channel's default adapter (Twilio or the console). Replies copy it.
    provider: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    # Set on a broadcast's messages: one per contact per run, however often fan-out restarts.
    broadcast_run_id: Mapped[int | None] = mapped_column(ForeignKey("broadcast_runs.id"))
    kind: Mapped[str | None] = mapped_column(String(32))
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(2))
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    media_urls: Mapped[list[str] | None] = mapped_column(JSON)
    segments: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    allow_opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    in_reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    seq: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The worker holding a dispatching row (`bot worker --name`): one restarted after a crash
    # takes back its own sends at once, not another live worker's (None: unnamed worker).
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MessageStatusEvent(Base):
    """Every status report for an outbound message, in arrival order, applied or not."""

    __tablename__ = "message_status_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Null while the SID is unknown: a callback can beat our own record of the SID it names.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    provider_sid: Mapped[str] = mapped_column(String(64), index=True)
    # Twilio adds statuses without notice ("partially_delivered"): room for them.
    status: Mapped[str] = mapped_column(String(32))
    applied: Mapped[bool] = mapped_column(Boolean)
    error_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentEvent(Base):
    """The consent log: every opt-in and opt-out, when, how and through which message."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UnansweredQuestion(Base):
    """A message the bot did not answer with confidence: the coordinators' review queue."""

    __tablename__ = "unanswered_questions"
    __table_args__ = (Index("ix_unanswered_questions_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    # The model's top candidates: [[intent, confidence], ...]
    candidates: Mapped[list[Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyVersion(Base):
    """Every definition a flow ever ran under, by content digest: responses keep their label."""

    __tablename__ = "survey_versions"
    __table_args__ = (
        UniqueConstraint("survey_key", "digest"),
        UniqueConstraint("survey_key", "version"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    survey_key: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    # The definition as loaded, so a session started on it can finish on it after a change.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyResponse(Base):
    """One person's way through one survey (or feedback) version, saved after every answer."""

    __tablename__ = "survey_responses"
    __table_args__ = (
        Index("ix_survey_responses_survey_key_started_at", "survey_key", "started_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    session_id: Mapped[str] = mapped_column(String(32), unique=True)
    survey_key: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(2))
    # active, completed, quit, expired, stopped
    status: Mapped[str] = mapped_column(String(16))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    skipped: Mapped[list[str] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the retention sweep moved the answers into survey_tallies and blanked them.
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Feedback(Base):
    """Feedback from the community, with its status in the coordinators' inbox."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    session_id: Mapped[str | None] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    # complaint, suggestion, question, rumour, other
    category: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(2))
    # new, in_review, answered, closed
    status: Mapped[str] = mapped_column(String(16), default="new")
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ContactGroup(Base):
    """A contact's groups or tags ("ward-3", "mothers-group"): broadcast audiences use them."""

    __tablename__ = "contact_groups"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class User(Base):
    """A person who runs the service: admin, coordinator or mobilizer."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # A mobilizer's registered phone (E.164): BROADCAST by SMS is accepted only from it.
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin, coordinator, mobilizer
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A password someone else chose (the first admin's, an admin's reset) must be replaced
    # at the next sign-in before any other page opens.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Part of every session's identity: raising it signs the account out everywhere.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Two-factor sign-in (TOTP, RFC 6238): the base32 secret (set while enrolling, in use once
    # totp_enabled_at is set) and the last time step accepted, so a code works only once.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """A one-time code that stands in for the authenticator app (kept as a SHA-256 hash)."""

    __tablename__ = "user_recovery_codes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserGroup(Base):
    """The groups a mobilizer is assigned to: their contacts, conversations, broadcasts."""

    __tablename__ = "user_groups"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)


class AuditEvent(Base):
    """Who did what: refused BROADCAST attempts, manual replies, user changes."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Broadcast(Base):
    """An awareness message to an audience, now, once at a time, or recurring."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body_en: Mapped[str] = mapped_column(Text)
    body_ne: Mapped[str] = mapped_column(Text)
    # Filters: {"groups": [...], "languages": [...], "channels": [...], "district": ...}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    schedule: Mapped[str] = mapped_column(String(16))  # now, once, recurring
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cron: Mapped[str | None] = mapped_column(String(100))  # "0 8 * * sun" (local time)
    timezone: Mapped[str] = mapped_column(String(64))
    survey_key: Mapped[str | None] = mapped_column(String(48))  # invite into this survey
    # Approved WhatsApp templates for outside the 24-hour window, per language.
    template_en: Mapped[str | None] = mapped_column(String(64))
    template_ne: Mapped[str | None] = mapped_column(String(64))
    # draft, scheduled, sending, sent, canceled
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    # A draft asked for by SMS is confirmed only with the one-time code its preview showed
    # ("YES 4827"); kept as a keyed hash, never in clear.
    confirm_code_hash: Mapped[str | None] = mapped_column(String(128))
    # A mobilizer's recurring broadcast waits (status pending_approval) until staff approve it.
    approved_by: Mapped[str | None] = mapped_column(String(200))
    # The MessageSid of the SMS that created it: a repeated webhook makes no second draft.
    source_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BroadcastRun(Base):
    """One sending of a broadcast (a recurring one has one per occurrence)."""

    __tablename__ = "broadcast_runs"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "scheduled_for"),
        Index("ix_broadcast_runs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    # planning (fan-out), sending, done, canceled
    status: Mapped[str] = mapped_column(String(16))
    # Fan-out resumes after the last contact id it planned.
    planned_through: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), default=0
    )
    planned: Mapped[int] = mapped_column(Integer, default=0)
    # A worker that works on the run holds it until then (fan-out or sending).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# -- The dashboard (migration 0005) ------------------------------------------------------------

from sqlalchemy import false  # noqa: E402 - kept with the section that needs it

# The conversation list: contacts by their latest inbound message, keyset-paginated.
Index("ix_contacts_last_inbound_at_id", Contact.last_inbound_at, Contact.id)
# The conversation list's topic filter: "has this contact asked about X?" is one index probe.
Index("ix_messages_contact_id_intent", Message.contact_id, Message.intent)
# Text search over what people wrote: a trigram index on PostgreSQL (ILIKE '%…%' uses it).
# SQLite has no trigram index; there the index is empty (a partial index on a false
# condition) and the search scans newest first, a window at a time (dashboard.conversations).
Index(
    "ix_messages_body_trgm",
    Message.body,
    postgresql_using="gin",
    postgresql_ops={"body": "gin_trgm_ops"},
    postgresql_where=Message.direction == "in",
    sqlite_where=false(),
)


class NluExample(Base):
    """A training example a coordinator made from a real message (the NLU review queue)."""

    __tablename__ = "nlu_examples"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    text: Mapped[str] = mapped_column(String(500))
    # The Rasa intent: `faq_<topic>` or `out_of_scope`.
    intent: Mapped[str] = mapped_column(String(64), index=True)
    # en, ne (Devanagari) or romanized
    language: Mapped[str] = mapped_column(String(16))
    source_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), unique=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NluTrainingRun(Base):
    """One retraining started from the dashboard: progress, outcome and the model it made."""

    __tablename__ = "nlu_training_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # queued, running, succeeded, failed
    status: Mapped[str] = mapped_column(String(16))
    # "active" while queued or running, else NULL: the unique constraint allows one at a time.
    slot: Mapped[str | None] = mapped_column(String(8), unique=True)
    stage: Mapped[str] = mapped_column(String(64))
    progress: Mapped[int] = mapped_column(Integer, default=0)  # percent
    model_name: Mapped[str] = mapped_column(String(100))
    model_path: Mapped[str | None] = mapped_column(String(500))
    examples: Mapped[int] = mapped_column(Integer, default=0)
    log: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    started_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# -- Data protection (migration 0008, issue 12) -----------------------------------------------


class KeptOptOut(Base):
    """An erased person's opt-out, kept as a keyed hash of the number (never the number).

    When the number comes back (it texts again, is imported, is in a broadcast's audience)
    it is opted out until the person sends START. See bot/personal_data/optouts.py.
    """

    __tablename__ = "kept_opt_outs"

    # HMAC-SHA256 of the E.164 number, hex, keyed by PHONE_HASH_KEY (or SECRET_KEY).
    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyTally(Base):
    """Survey answers counted without the person: what erasure and retention leave behind.

    `question` is empty for whole-response counts (`value` is `responses` or `completed`);
    otherwise `value` is one answer option (free-text answers are never counted).
    """

    __tablename__ = "survey_tallies"
    __table_args__ = (UniqueConstraint("survey_key", "version", "started_on", "question", "value"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    survey_key: Mapped[str] = mapped_column(String(48))
    version: Mapped[str] = mapped_column(String(16))
    # The local day (deployment time zone) the responses started: the `since` filter's grain.
    started_on: Mapped[date] = mapped_column(Date)
    question: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(200))
    count: Mapped[int] = mapped_column(Integer)


class AndroidPhoneState(Base):
    """One phone of the Android SMS gateway's pool (issue 11, bot/channels/android/pool.py):
    whether it is in the pool, shared by every worker and shown on the dashboard."""

    __tablename__ = "android_phones"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    live: Mapped[bool] = mapped_column(Boolean, default=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive
    last_error: Mapped[str | None] = mapped_column(String(300))
    out_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AndroidHandoff(Base):
    """A message handed to a phone of the Android pool, by the id we gave it: "handing"
    until the phone answers, then "accepted" or "refused"; "doubt" when it did not answer:
    the message is not sent elsewhere until that phone says it never took it
    (bot/channels/android/pool.py)."""

    __tablename__ = "android_handoffs"
    __table_args__ = (Index("ix_android_handoffs_digest_state", "digest", "state"),)

    gateway_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    phone: Mapped[str] = mapped_column(String(32))
    # Keyed hash (PHONE_HASH_KEY) of recipient and text: no number is kept here.
    digest: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RouteHealth(Base):
    """Whether a route (a channel and its provider, "sms:sparrow") is up, shared by every
    worker and process (issue 11, bot/failover.py): consecutive failures that mean the
    provider is down, since when it is in its state, and when a down route gets a probe."""

    __tablename__ = "route_health"

    route: Mapped[str] = mapped_column(String(48), primary_key=True)
    up: Mapped[bool] = mapped_column(Boolean, default=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RouteEvent(Base):
    """A route going down or coming back up, or sends switching from one route to another
    while it is down (one row per pair and outage, `count` messages): the dashboard's
    Channels panel and /readyz show them."""

    __tablename__ = "route_events"
    __table_args__ = (UniqueConstraint("kind", "route", "to_route", "outage"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(8))  # down, up, switch
    route: Mapped[str] = mapped_column(String(48))
    to_route: Mapped[str | None] = mapped_column(String(48))
    # A switch: when the outage of `route` began (one row per pair and outage).
    outage: Mapped[datetime | None] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=1)
    detail: Mapped[str | None] = mapped_column(String(300))
