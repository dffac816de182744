"""What the core needs to let a mobilizer broadcast by SMS, without knowing the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.core.messages import Language


@dataclass(frozen=True)
class DeskReply:
    """A reply to a mobilizer: one of the bot's texts, its values, and any draft to confirm."""

    key: str
    values: Mapping[str, str] = field(default_factory=dict)
    draft_id: int | None = None


class BroadcastDesk(Protocol):
    """Creates, previews, starts and drops broadcasts asked for by text message."""

    def request(
        self, phone: str, text: str, language: Language, source_id: str | None
    ) -> DeskReply:
        """`text` is what followed BROADCAST: "<group> <message>"."""
        ...

    def confirm(self, phone: str, draft_id: int) -> DeskReply: ...

    def drop(self, phone: str, draft_id: int) -> DeskReply: ...
