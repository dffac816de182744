"""BROADCAST by text message from a registered mobilizer's phone.

"BROADCAST ward-3 Vaccination camp at the school on Sunday 10am" → a draft to the group,
answered with its preview and "Reply YES 4827 to send or NO to drop": the draft goes out only
with the one-time code its preview showed, within BROADCAST_CONFIRM_MINUTES, and after the
sender's account and groups are checked again. Only registered mobilizers (users with that
phone) may do it, only from a real channel (never the web simulator), and only to their own
groups (coordinators and admins to any group). Every request is noted for the account holder
on the dashboard; every refused attempt is kept in the audit log (masked number, no text).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from bot.broadcasts.audience import Audience
from bot.broadcasts.ports import BroadcastPorts
from bot.broadcasts.rights import BROADCASTING_ROLES, Actor, actor_by, audience_allowed
from bot.broadcasts.service import DRAFT, BroadcastError, Draft, cancel, confirm, create, get
from bot.broadcasts.service import preview_of as preview_broadcast
from bot.core.desk import CODE_DIGITS, MAX_CODE_TRIES, DeskReply
from bot.core.messages import Channel, Language
from bot.db.models import AuditEvent, Broadcast, User
from bot.privacy import mask_phone

log = logging.getLogger(__name__)

# Where a staff member's phone may act from: real providers' channels only.
TRUSTED_CHANNELS = frozenset({Channel.SMS, Channel.WHATSAPP})
# The dashboard shows the account holder this action ("a broadcast was asked for from your
# phone"); see dashboard/views/broadcasts.py.
REQUESTED_BY_SMS = "broadcast_requested_by_sms"


def new_code() -> str:
    """A one-time confirmation code: CODE_DIGITS random digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


class SmsDesk:
    """The database side of the core's BroadcastDesk port."""

    def __init__(self, ports: BroadcastPorts) -> None:
        self.ports = ports

    def _code_hash(self, draft_id: int, code: str) -> str:
        key = self.ports.settings.secret_key.encode()
        return hmac.new(key, f"broadcast:{draft_id}:{code}".encode(), hashlib.sha256).hexdigest()

    def _actor(self, phone: str) -> Actor | None:
        with self.ports.db.read() as session:
            email = session.scalar(
                select(User.email).where(User.phone == phone, User.active.is_(True))
            )
            return actor_by(session, email) if email is not None else None

    def _audit(self, actor: str, action: str, **detail: object) -> None:
        # `actor` is an account's email or a masked number; `detail` holds no message text.
        log.warning("%s by %s: %s", action, actor, detail)
        with self.ports.db.write() as session:
            session.add(
                AuditEvent(actor=actor, action=action, detail=detail, created_at=self.ports.clock())
            )

    def _refuse(self, phone: str, reason: str, **detail: object) -> DeskReply:
        self._audit(mask_phone(phone), "broadcast_refused", reason=reason, **detail)
        return DeskReply("broadcast_refused")

    def request(
        self, phone: str, text: str, language: Language, source_id: str | None, channel: Channel
    ) -> DeskReply:
        if channel not in TRUSTED_CHANNELS:
            return self._refuse(phone, "not from a phone", channel=channel.value)
        actor = self._actor(phone)
        if actor is None or actor.role not in BROADCASTING_ROLES:
            return self._refuse(phone, "not a registered mobilizer")
        parts = text.split(None, 1)
        if len(parts) < 2:
            return DeskReply("broadcast_usage")
        asked, body = parts[0], parts[1].strip()
        if not actor.staff:
            own = {g.lower(): g for g in actor.groups}
            if asked.lower() not in own:
                return self._refuse(phone, "not their group", user=actor.email, group=asked[:64])
            group = own[asked.lower()]
        else:
            group = asked
        draft = Draft(
            title=f"SMS from {actor.email}: {body[:60]}",
            body_en=body,
            body_ne=body,
            audience=Audience(groups=(group,)),
        )
        code = new_code()
        try:
            draft_id = create(self.ports, draft, created_by=actor.email, source_sid=source_id)
        except BroadcastError:
            return DeskReply("broadcast_usage")
        self._set_code(draft_id, code)
        preview = preview_broadcast(self.ports, draft_id)
        if preview.total == 0:
            cancel(self.ports, draft_id)
            return DeskReply("broadcast_nobody", {"group": group})
        # The account holder hears of every request made from their number (the preview goes
        # to the phone itself; the dashboard keeps a notice for the account).
        self._audit(
            actor.email,
            REQUESTED_BY_SMS,
            broadcast_id=draft_id,
            group=group,
            channel=channel.value,
            phone=mask_phone(phone),
        )
        skipped = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in preview.skipped.items())
        return DeskReply(
            "broadcast_preview",
            {
                "group": group,
                "recipients": str(preview.total),
                "segments": str(preview.total_segments),
                "cost": f"{preview.cost:.2f} {preview.currency}",
                "minutes": str(max(1, round(preview.seconds / 60))),
                "skipped": skipped or "0",
                "code": code,
                "valid": str(self.ports.settings.broadcast_confirm_minutes),
            },
            draft_id=draft_id,
        )

    def _set_code(self, draft_id: int, code: str) -> None:
        # Set after the draft exists (the code is keyed by its id). A turn handled again after
        # a crash gets the same draft back and a new code: the preview about to go out is the
        # only one the person sees.
        with self.ports.db.write() as session:
            session.execute(
                update(Broadcast)
                .where(Broadcast.id == draft_id, Broadcast.status == DRAFT)
                .values(confirm_code_hash=self._code_hash(draft_id, code))
            )

    def _own_draft(self, actor: Actor | None, draft_id: int) -> Broadcast | None:
        if actor is None:
            return None
        try:
            row = get(self.ports, draft_id)
        except BroadcastError:
            return None
        if row.created_by != actor.email or row.status != DRAFT or not row.confirm_code_hash:
            return None
        return row

    def confirm(
        self, phone: str, draft_id: int, code: str, attempt: int, channel: Channel
    ) -> DeskReply:
        if channel not in TRUSTED_CHANNELS:
            return self._refuse(phone, "not from a phone", channel=channel.value)
        actor = self._actor(phone)
        row = self._own_draft(actor, draft_id)
        if actor is None or row is None:
            return self._refuse(phone, "not their draft", broadcast_id=draft_id)
        ttl = timedelta(minutes=self.ports.settings.broadcast_confirm_minutes)
        if self.ports.clock() - row.created_at > ttl:
            cancel(self.ports, draft_id)
            return DeskReply("broadcast_expired")
        expected = row.confirm_code_hash or ""
        if not hmac.compare_digest(self._code_hash(draft_id, code), expected):
            if attempt < MAX_CODE_TRIES:
                return DeskReply("broadcast_code_wrong", draft_id=draft_id)
            cancel(self.ports, draft_id)
            self._audit(actor.email, "broadcast_code_failed", broadcast_id=draft_id)
            return DeskReply("broadcast_dropped")
        if not audience_allowed(actor, row.audience):  # groups may have changed since
            cancel(self.ports, draft_id)
            return self._refuse(phone, "not their group", user=actor.email, broadcast_id=draft_id)
        try:
            confirm(self.ports, draft_id, by=actor.email)
        except BroadcastError as exc:
            return self._refuse(phone, str(exc)[:200], broadcast_id=draft_id)
        self._audit(actor.email, "broadcast_sent_by_sms", broadcast_id=draft_id)
        return DeskReply("broadcast_started")

    def drop(self, phone: str, draft_id: int) -> DeskReply:
        if self._own_draft(self._actor(phone), draft_id) is not None:
            cancel(self.ports, draft_id)
        return DeskReply("broadcast_dropped")
