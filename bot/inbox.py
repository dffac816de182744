"""The durable inbox: inbound messages are committed before anyone answers Twilio.

`accept` runs in the webhook (one short transaction); `InboxProcessor.process_contact` runs
in the worker and turns each stored message into outbox rows, one contact at a time, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from bot.core.handler import Bot
from bot.core.messages import Channel, ContactState, Inbound, Language, Turn
from bot.core.segments import count_segments
from bot.db.database import Database
from bot.db.models import ConsentEvent, Contact, Message, utcnow
from bot.db.upsert import insert_for

log = logging.getLogger(__name__)

RECEIVED = "received"
PROCESSED = "processed"
DISPATCHING = "dispatching"
# A worker that claims an outbound message owns it this long; after that the sweeper
# assumes the worker died and hands the message to another.
CLAIM = timedelta(seconds=120)


@dataclass(frozen=True)
class Accepted:
    """The stored message, or the earlier copy of a repeated delivery."""

    message_id: int | None
    contact_id: int
    duplicate: bool


def accept(
    db: Database, inbound: Inbound, simulated: bool = False, now: datetime | None = None
) -> Accepted:
    """Stores an inbound message and its contact in one transaction.

    A repeated `provider_id` (Twilio retrying a delivery) is recognised and stored once.
    """
    now = now or inbound.received_at or utcnow()
    with db.write() as session:
        ins = insert_for(session, Contact)
        is_sms = inbound.channel is Channel.SMS
        is_whatsapp = inbound.channel is Channel.WHATSAPP
        values = {
            "phone": inbound.sender,
            "simulated": simulated,
            "channel": inbound.channel.value,
            "has_sms": is_sms,
            "has_whatsapp": is_whatsapp,
            "profile_name": inbound.profile_name,
            "last_inbound_at": now,
            "opted_out": False,
            "version": 0,
            "created_at": now,
            "updated_at": now,
        }
        upsert = ins.values(**values).on_conflict_do_update(
            index_elements=[Contact.phone, Contact.simulated],
            set_={
                "channel": ins.excluded.channel,
                "has_sms": or_(Contact.has_sms, ins.excluded.has_sms),
                "has_whatsapp": or_(Contact.has_whatsapp, ins.excluded.has_whatsapp),
                "profile_name": func.coalesce(ins.excluded.profile_name, Contact.profile_name),
                "last_inbound_at": ins.excluded.last_inbound_at,
                "updated_at": ins.excluded.updated_at,
            },
        )
        contact_id = session.execute(upsert.returning(Contact.id)).scalar_one()
        msg = insert_for(session, Message).values(
            contact_id=contact_id,
            direction="in",
            channel=inbound.channel.value,
            body=inbound.body,
            provider_sid=inbound.provider_id,
            status=RECEIVED,
            num_media=len(inbound.media_urls),
            media_urls=list(inbound.media_urls) or None,
            attempts=0,
            allow_opted_out=False,
            created_at=now,
            updated_at=now,
        )
        message_id = session.execute(
            msg.on_conflict_do_nothing(index_elements=[Message.provider_sid]).returning(Message.id)
        ).scalar_one_or_none()
    return Accepted(message_id, contact_id, duplicate=message_id is None)


class _Conflict(Exception):
    """Another worker changed the contact or the message first; read again and retry."""


class InboxProcessor:
    """Runs the core over stored messages and writes its answers to the outbox."""

    def __init__(
        self,
        db: Database,
        bot: Bot,
        send: Callable[[list[int]], None],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.bot = bot
        self.send = send
        self.clock = clock

    def process_contact(self, contact_id: int, limit: int = 100) -> int:
        """Handles the contact's waiting messages oldest first; returns how many it handled.

        Workers may run this for the same contact at once: the contact's `version` and the
        message's status make exactly one of them win each message; the others re-read.
        """
        handled = 0
        for _ in range(limit):
            with self.db.read() as session:
                contact = session.get(Contact, contact_id)
                message = session.scalars(
                    select(Message)
                    .where(Message.contact_id == contact_id, Message.direction == "in")
                    .where(Message.status == RECEIVED)
                    .order_by(Message.id)
                    .limit(1)
                ).first()
            if contact is None or message is None:
                break
            state = ContactState(
                phone=contact.phone,
                channel=Channel(message.channel),
                language=Language(contact.language) if contact.language else None,
                opted_out=contact.opted_out,
            )
            inbound = Inbound(
                channel=Channel(message.channel),
                sender=contact.phone,
                body=message.body,
                media_urls=tuple(message.media_urls or ()),
                provider_id=message.provider_sid,
            )
            turn = self.bot.handle(inbound, state)
            try:
                outbox_ids = self._commit_turn(contact, message, turn)
            except _Conflict:
                log.debug("contact %s changed under us; reading again", contact_id)
                continue
            handled += 1
            if outbox_ids:
                self.send(outbox_ids)
        return handled

    def _commit_turn(self, contact: Contact, message: Message, turn: Turn) -> list[int]:
        now = self.clock()
        new_state = turn.contact
        reply_language = turn.outbounds[0].language.value if turn.outbounds else None
        with self.db.write() as session:
            claimed = session.execute(
                update(Message)
                .where(Message.id == message.id, Message.status == RECEIVED)
                .values(
                    status=PROCESSED, intent=turn.intent, language=reply_language, updated_at=now
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise _Conflict
            values: dict[str, object] = {"version": contact.version + 1, "updated_at": now}
            if reply_language:
                values["last_language"] = reply_language
            if new_state is not None:
                values["language"] = new_state.language.value if new_state.language else None
                values["opted_out"] = new_state.opted_out
                if new_state.opted_out and not contact.opted_out:
                    values["opted_out_at"] = now
            bumped = session.execute(
                update(Contact)
                .where(Contact.id == contact.id, Contact.version == contact.version)
                .values(**values)
            )
            if bumped.rowcount != 1:  # type: ignore[attr-defined]
                raise _Conflict
            if turn.consent is not None:
                session.add(
                    ConsentEvent(
                        contact_id=contact.id,
                        opted_out=turn.consent.opted_out,
                        reason=turn.consent.reason,
                        message_id=message.id,
                        created_at=now,
                    )
                )
            rows = [
                Message(
                    contact_id=contact.id,
                    direction="out",
                    channel=out.channel.value,
                    body=out.body,
                    status=DISPATCHING,
                    kind=out.kind,
                    language=out.language.value,
                    segments=count_segments(out.body).segments,
                    allow_opted_out=out.allow_opted_out,
                    in_reply_to_id=message.id,
                    seq=seq,
                    attempts=0,
                    num_media=0,
                    claimed_until=now + CLAIM,
                    created_at=now,
                    updated_at=now,
                )
                for seq, out in enumerate(turn.outbounds)
            ]
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]
