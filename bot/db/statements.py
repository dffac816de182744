"""The hot path's SQL, built once per database and executed with parameters.

Building a SQLAlchemy statement costs far more than running it on SQLite, so the webhook and
the worker use these prebuilt Core statements instead of building new ones per message, and
`Statements.run` runs them on SQLite's cursor without SQLAlchemy's execution machinery
(bot/db/direct.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, case, func, null, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from bot.core.status import MessageStatus
from bot.db.direct import Direct, Params, Rows
from bot.db.models import (
    ConsentEvent,
    Contact,
    Feedback,
    KeptOptOut,
    Message,
    MessageStatusEvent,
    SurveyResponse,
    UnansweredQuestion,
    UTCDateTime,
)

contacts: Table = Contact.__table__  # type: ignore[assignment]
messages: Table = Message.__table__  # type: ignore[assignment]
status_events: Table = MessageStatusEvent.__table__  # type: ignore[assignment]
responses: Table = SurveyResponse.__table__  # type: ignore[assignment]


def _now(name: str = "now") -> Any:
    return bindparam(name, type_=UTCDateTime())


class Statements:
    """Prebuilt statements for one SQL dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._direct = Direct(dialect)
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert

        # A number whose person was erased after opting out comes back opted out (issue 12):
        # `phone_hash` is its keyed hash (bot/personal_data/optouts.py). Only a new row takes
        # it; an existing contact's consent is the contact's own.
        kept_opt_out = (
            select(KeptOptOut.phone_hash)
            .where(KeptOptOut.phone_hash == bindparam("phone_hash"))
            .exists()
        )
        ins_contact = insert(contacts).values(
            phone=bindparam("phone"),
            simulated=bindparam("simulated"),
            channel=bindparam("channel"),
            has_sms=bindparam("has_sms"),
            has_whatsapp=bindparam("has_whatsapp"),
            profile_name=bindparam("profile_name"),
            last_provider=bindparam("provider"),
            last_inbound_at=_now(),
            opted_out=kept_opt_out,
            opted_out_at=case((kept_opt_out, _now()), else_=null()),
            version=0,
            created_at=_now(),
            updated_at=_now(),
        )
        self.upsert_contact = ins_contact.on_conflict_do_update(
            index_elements=[contacts.c.phone, contacts.c.simulated],
            set_={
                "channel": ins_contact.excluded.channel,
                "has_sms": or_(contacts.c.has_sms, ins_contact.excluded.has_sms),
                "has_whatsapp": or_(contacts.c.has_whatsapp, ins_contact.excluded.has_whatsapp),
                "profile_name": func.coalesce(
                    ins_contact.excluded.profile_name, contacts.c.profile_name
                ),
                "last_provider": ins_contact.excluded.last_provider,
                "last_inbound_at": ins_contact.excluded.last_inbound_at,
                "updated_at": ins_contact.excluded.updated_at,
            },
        ).returning(contacts.c.id)

        self.insert_inbound = (
            insert(messages)
            .values(
                contact_id=bindparam("contact_id"),
                direction="in",
                channel=bindparam("channel"),
                body=bindparam("body"),
                provider_sid=bindparam("provider_sid"),
                provider=bindparam("provider"),
                status=MessageStatus.RECEIVED,
                num_media=bindparam("num_media"),
                media_urls=bindparam("media_urls", type_=messages.c.media_urls.type),
                attempts=0,
                allow_opted_out=False,
                created_at=_now(),
                updated_at=_now(),
            )
            .on_conflict_do_nothing(index_elements=[messages.c.provider_sid])
            .returning(messages.c.id)
        )

        self.contact_by_id = select(
            contacts.c.id,
            contacts.c.phone,
            contacts.c.channel,
            contacts.c.language,
            contacts.c.last_language,
            contacts.c.opted_out,
            contacts.c.opted_out_at,
            contacts.c.version,
            contacts.c.state,
            contacts.c.paused_until,
            contacts.c.last_provider,
        ).where(contacts.c.id == bindparam("contact_id"))

        # Held for sending by a worker now: dispatching, under a claim that has not run out.
        held = (messages.c.status == MessageStatus.DISPATCHING) & (
            messages.c.claimed_until > bindparam("now")
        )
        # The contact's conversation rows (not broadcasts) held for sending: with a shared
        # queue, a turn's answers wait for these (bot/sender.py) ...
        self.held_sends = (
            select(messages.c.id)
            .where(
                messages.c.contact_id == bindparam("contact_id"),
                messages.c.direction == "out",
                messages.c.broadcast_run_id.is_(None),
                held,
            )
            .order_by(messages.c.id)
        )
        # ... and which of them are still held (a worker died: let go when its claim ends).
        self.still_held = select(messages.c.id).where(
            messages.c.id.in_(bindparam("ids", expanding=True)), held
        )

        # The two oldest: the one to handle, and whether another waits behind it.
        self.oldest_received = (
            select(
                messages.c.id,
                messages.c.channel,
                messages.c.body,
                messages.c.media_urls,
                messages.c.provider_sid,
                messages.c.provider,
            )
            .where(
                messages.c.contact_id == bindparam("contact_id"),
                messages.c.direction == "in",
                messages.c.status == MessageStatus.RECEIVED,
            )
            .order_by(messages.c.id)
            .limit(2)
        )

        self.mark_processed = (
            update(messages)
            .where(
                messages.c.id == bindparam("message_id"),
                messages.c.status == MessageStatus.RECEIVED,
            )
            .values(
                status=MessageStatus.PROCESSED,
                intent=bindparam("intent"),
                confidence=bindparam("confidence"),
                language=bindparam("language"),
                updated_at=_now(),
            )
        )

        self.insert_consent = insert(ConsentEvent.__table__)  # type: ignore[arg-type]
        self.insert_unanswered = insert(UnansweredQuestion.__table__)  # type: ignore[arg-type]

        # A survey response is saved after every answer: the first save inserts it.
        ins_response = insert(responses).values(
            session_id=bindparam("session_id"),
            survey_key=bindparam("survey_key"),
            kind=bindparam("kind"),
            version=bindparam("version"),
            contact_id=bindparam("contact_id"),
            channel=bindparam("channel"),
            language=bindparam("language"),
            status=bindparam("status"),
            answers=bindparam("answers", type_=responses.c.answers.type),
            skipped=bindparam("skipped", type_=responses.c.skipped.type),
            started_at=_now("started_at"),
            updated_at=_now("updated_at"),
            completed_at=_now("completed_at"),
        )
        self.upsert_response = ins_response.on_conflict_do_update(
            index_elements=[responses.c.session_id],
            set_={
                "language": ins_response.excluded.language,
                "status": ins_response.excluded.status,
                "answers": ins_response.excluded.answers,
                "skipped": ins_response.excluded.skipped,
                "updated_at": ins_response.excluded.updated_at,
                "completed_at": ins_response.excluded.completed_at,
            },
        )
        self.insert_feedback = insert(Feedback.__table__)  # type: ignore[arg-type]

        self.insert_outbound = insert(messages).returning(
            messages.c.id, sort_by_parameter_order=True
        )

        self.outbound_for_send = (
            select(
                messages.c.id,
                messages.c.channel,
                messages.c.provider,
                messages.c.body,
                messages.c.status,
                messages.c.kind,
                messages.c.language,
                messages.c.allow_opted_out,
                messages.c.attempts,
                messages.c.extra,
                messages.c.error_message,
                messages.c.created_at,
                messages.c.claimed_until,
                contacts.c.id.label("contact_id"),
                contacts.c.phone,
                contacts.c.opted_out,
            )
            .join(contacts, contacts.c.id == messages.c.contact_id)
            .where(messages.c.id == bindparam("message_id"))
        )

        self.record_sent = (
            update(messages)
            .where(messages.c.id == bindparam("message_id"))
            .values(
                provider_sid=bindparam("sid"),
                status=bindparam("status"),
                attempts=bindparam("attempts"),
                claimed_until=None,
                error_message=None,
                updated_at=_now(),
            )
        )

        self.bump_contact = (
            update(contacts)
            .where(
                contacts.c.id == bindparam("contact_id"), contacts.c.version == bindparam("version")
            )
            .values(
                version=contacts.c.version + 1,
                language=bindparam("language"),
                opted_out=bindparam("opted_out"),
                opted_out_at=bindparam("opted_out_at", type_=UTCDateTime()),
                last_language=func.coalesce(bindparam("last_language"), contacts.c.last_language),
                state=bindparam("state", type_=contacts.c.state.type),
                updated_at=_now(),
            )
        )

        self.early_status_sids = (
            select(status_events.c.provider_sid)
            .where(
                status_events.c.provider_sid.in_(bindparam("sids", expanding=True)),
                status_events.c.message_id.is_(None),
            )
            .distinct()
        )

    def run(self, conn: Connection, statement: Any, params: Params | Sequence[Params]) -> Rows:
        """`conn.execute(statement, params)`; on SQLite straight on the driver's cursor."""
        return self._direct.execute(conn, statement, params)
