"""What the core needs to let a mobilizer broadcast by SMS, without knowing the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.core.messages import Channel, Language

# A broadcast asked for by SMS is confirmed with "YES" and the code its preview showed.
CODE_DIGITS = 4
# Wrong codes allowed before the draft is dropped.
MAX_CODE_TRIES = 3


@dataclass(frozen=True)
class DeskReply:
    """A reply to a mobilizer: one of the bot's texts, its values, and any draft to confirm."""

    key: str
    values: Mapping[str, str] = field(default_factory=dict)
    draft_id: int | None = None


class BroadcastDesk(Protocol):
    """Creates, previews, starts and drops broadcasts asked for by text message."""

    def request(
        self, phone: str, text: str, language: Language, source_id: str | None, channel: Channel
    ) -> DeskReply:
        """`text` is what followed BROADCAST: "<group> <message>"."""
        ...

    def confirm(
        self, phone: str, draft_id: int, code: str, attempt: int, channel: Channel
    ) -> DeskReply:
        """ "YES <code>": `attempt` counts the tries at this draft's code, from 1."""
        ...

    def drop(self, phone: str, draft_id: int) -> DeskReply: ...
