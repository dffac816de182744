"""The core's message and contact types, shared by every channel adapter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    """Where a message travels. `simulator` never leaves the service."""

    SMS = "sms"
    WHATSAPP = "whatsapp"
    SIMULATOR = "simulator"


class Language(StrEnum):
    """The languages the bot speaks."""

    EN = "en"
    NE = "ne"


@dataclass(frozen=True)
class Inbound:
    """One message a person sent, as the core sees it (no provider fields)."""

    channel: Channel
    sender: str  # E.164 phone number, without any channel prefix
    body: str
    media_urls: tuple[str, ...] = ()
    provider_id: str | None = None
    profile_name: str | None = None
    received_at: datetime | None = None
    # Which provider of `channel` carried it (None: the channel's default adapter). The core
    # never reads it; the inbox sends the replies back the same way.
    route: str | None = None


@dataclass(frozen=True)
class Outbound:
    """One message to send. `allow_opted_out` is only for the opt-out confirmation itself."""

    channel: Channel
    to: str
    body: str
    language: Language
    kind: str = "reply"
    allow_opted_out: bool = False
    # An approved WhatsApp template (outside the 24-hour window): sent instead of the body.
    content_sid: str | None = None
    content_variables: Mapping[str, str] | None = None
    # The provider to send through (None: the channel's default adapter); set by the inbox
    # from the message answered, never by the core.
    route: str | None = None


@dataclass(frozen=True)
class ContactState:
    """What the core knows about a contact when it handles their message."""

    phone: str
    channel: Channel
    language: Language | None = None
    opted_out: bool = False
    # The language of our last reply: "1" or "ok" alone says nothing about language.
    last_language: Language | None = None
    # Conversation state the next message may refer to: offered FAQ choices, a MORE to send.
    pending: Mapping[str, Any] | None = None
    # The survey or feedback session under way (flows.engine.Session.to_dict()), if any.
    session: Mapping[str, Any] | None = None
    # Surveys this contact completed, as "key@version": they are not asked twice.
    done: tuple[str, ...] = ()
    # Human handoff: a person answers this contact until then; the bot stays quiet.
    paused_until: datetime | None = None

    def stored(self) -> dict[str, Any] | None:
        """The conversation state as the contact row keeps it (JSON)."""
        state: dict[str, Any] = {}
        if self.pending:
            state["pending"] = dict(self.pending)
        if self.session:
            state["session"] = dict(self.session)
        if self.done:
            state["done"] = list(self.done)
        return state or None


def unpack_state(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """ContactState keyword arguments from a contact row's `state` JSON."""
    if not stored:
        return {}
    if not {"pending", "session", "done"} & set(stored):
        return {"pending": dict(stored)}  # rows written before flows kept only `pending`
    return {
        "pending": stored.get("pending"),
        "session": stored.get("session"),
        "done": tuple(stored.get("done") or ()),
    }


@dataclass(frozen=True)
class ConsentChange:
    """An opt-in or opt-out the core decided on, for the consent log."""

    opted_out: bool
    reason: str


@dataclass(frozen=True)
class Unanswered:
    """A question the bot did not answer, with what the model thought, for review."""

    reason: str  # low_confidence, out_of_scope, nlu_unavailable
    candidates: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class FlowProgress:
    """A survey or feedback session after this turn, for the responses table."""

    session: Mapping[str, Any]  # flows.engine.Session.to_dict()
    language: Language
    channel: Channel


@dataclass(frozen=True)
class FeedbackRecord:
    """Feedback a person finished giving, for the coordinators' inbox."""

    reference: str
    category: str
    body: str
    location: str | None
    language: Language
    channel: Channel
    session_id: str


@dataclass(frozen=True)
class Turn:
    """The result of handling one inbound message."""

    outbounds: list[Outbound] = field(default_factory=list)
    contact: ContactState | None = None
    consent: ConsentChange | None = None
    intent: str | None = None
    confidence: float | None = None
    unanswered: Unanswered | None = None
    progress: tuple[FlowProgress, ...] = ()
    feedback: FeedbackRecord | None = None
