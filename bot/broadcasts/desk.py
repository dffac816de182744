"""BROADCAST by text message from a registered mobilizer's phone.

"BROADCAST ward-3 Vaccination camp at the school on Sunday 10am" → a draft to the group,
answered with its preview and "Reply YES to send or NO to drop". Only registered
mobilizers (users with that phone) may do it, and only to their own groups (coordinators
and admins to any group); every refused attempt is kept in the audit log.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.broadcasts.audience import Audience
from bot.broadcasts.service import DRAFT, BroadcastError, Draft, cancel, confirm, create, get
from bot.broadcasts.service import preview_of as preview_broadcast
from bot.core.desk import DeskReply
from bot.core.messages import Language
from bot.db.models import AuditEvent, User, UserGroup

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


class SmsDesk:
    """The database side of the core's BroadcastDesk port."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _user(self, phone: str) -> tuple[User | None, set[str]]:
        with self.runtime.db.read() as session:
            user = session.scalar(select(User).where(User.phone == phone, User.active.is_(True)))
            if user is None:
                return None, set()
            groups = set(
                session.scalars(select(UserGroup.group_name).where(UserGroup.user_id == user.id))
            )
        return user, groups

    def _audit(self, actor: str, action: str, **detail: object) -> None:
        log.warning("%s by %s: %s", action, actor, detail)
        with self.runtime.db.write() as session:
            session.add(
                AuditEvent(
                    actor=actor, action=action, detail=detail, created_at=self.runtime.clock()
                )
            )

    def request(
        self, phone: str, text: str, language: Language, source_id: str | None
    ) -> DeskReply:
        user, groups = self._user(phone)
        if user is None or user.role not in ("mobilizer", "coordinator", "admin"):
            self._audit(
                phone, "broadcast_refused", reason="not a registered mobilizer", text=text[:300]
            )
            return DeskReply("broadcast_refused")
        parts = text.split(None, 1)
        if len(parts) < 2:
            return DeskReply("broadcast_usage")
        asked, body = parts[0], parts[1].strip()
        allowed = {g.lower(): g for g in groups}
        if user.role == "mobilizer":
            if asked.lower() not in allowed:
                self._audit(
                    user.email,
                    "broadcast_refused",
                    reason="not their group",
                    group=asked,
                    phone=phone,
                )
                return DeskReply("broadcast_refused")
            group = allowed[asked.lower()]
        else:
            group = asked
        draft = Draft(
            title=f"SMS from {user.name or user.email}: {body[:60]}",
            body_en=body,
            body_ne=body,
            audience=Audience(groups=(group,)),
        )
        try:
            draft_id = create(self.runtime, draft, created_by=user.email, source_sid=source_id)
        except BroadcastError:
            return DeskReply("broadcast_usage")
        preview = preview_broadcast(self.runtime, draft_id)
        if preview.total == 0:
            cancel(self.runtime, draft_id)
            return DeskReply("broadcast_nobody", {"group": group})
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
            },
            draft_id=draft_id,
        )

    def _own_draft(self, phone: str, draft_id: int) -> bool:
        user, _ = self._user(phone)
        if user is None:
            return False
        try:
            row = get(self.runtime, draft_id)
        except BroadcastError:
            return False
        return row.created_by == user.email and row.status == DRAFT

    def confirm(self, phone: str, draft_id: int) -> DeskReply:
        if not self._own_draft(phone, draft_id):
            return DeskReply("broadcast_refused")
        confirm(self.runtime, draft_id)
        self._audit(phone, "broadcast_sent_by_sms", broadcast=draft_id)
        return DeskReply("broadcast_started")

    def drop(self, phone: str, draft_id: int) -> DeskReply:
        if self._own_draft(phone, draft_id):
            cancel(self.runtime, draft_id)
        return DeskReply("broadcast_dropped")
