"""How each recipient is reached, what it costs and how long the whole broadcast takes.

The same decision is used by the preview and by fan-out, so the preview is what happens:
WhatsApp free text inside the 24-hour window, the approved template outside it, SMS when
there is no template but the contact has SMS, otherwise skipped with the reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.broadcasts.audience import Audience, stream
from bot.core.segments import count_segments
from bot.db.database import Database
from bot.settings import Settings

WHATSAPP_WINDOW = timedelta(hours=24)

OPTED_OUT = "opted_out"
OUTSIDE_WINDOW = "outside_window_no_template"
NO_CHANNEL = "no_channel"


@dataclass(frozen=True)
class Message:
    """What a broadcast says, per language, and its WhatsApp templates."""

    body_en: str
    body_ne: str
    template_en: str | None = None
    template_ne: str | None = None

    def body(self, language: str) -> str:
        return self.body_ne if language == "ne" else self.body_en

    def template(self, language: str) -> str | None:
        return self.template_ne if language == "ne" else self.template_en


@dataclass(frozen=True)
class Route:
    """One recipient's message: channel, text or template, cost units, or why skipped."""

    channel: str | None
    language: str
    body: str
    segments: int
    content_sid: str | None = None
    skip: str | None = None


def route(contact: Any, message: Message, now: datetime) -> Route:
    """Decides how `contact` (an audience row) gets `message` at `now`."""
    language = contact.language if contact.language in ("en", "ne") else "en"
    body = message.body(language)
    if contact.opted_out:
        return Route(None, language, body, 0, skip=OPTED_OUT)
    whatsapp = contact.channel == "whatsapp" or (contact.has_whatsapp and not contact.has_sms)
    if whatsapp:
        last = contact.last_inbound_at
        if last is not None and now - last < WHATSAPP_WINDOW:
            return Route("whatsapp", language, body, 1)
        template = message.template(language)
        if template:
            return Route("whatsapp", language, body, 1, content_sid=template)
        if contact.has_sms:
            return Route("sms", language, body, count_segments(body).segments)
        return Route(None, language, body, 0, skip=OUTSIDE_WINDOW)
    if contact.has_sms or contact.channel == "sms":
        return Route("sms", language, body, count_segments(body).segments)
    return Route(None, language, body, 0, skip=NO_CHANNEL)


def price_of(settings: Settings, channel: str, phone: str) -> float:
    """Price per segment: the longest matching "channel:+prefix", else the channel's."""
    best, best_len = settings.prices.get(channel, 0.0), 0
    for key, price in settings.prices.items():
        name, _, prefix = key.partition(":")
        if name == channel and prefix and phone.startswith(prefix) and len(prefix) > best_len:
            best, best_len = price, len(prefix)
    return best


def sender_of(settings: Settings, channel: str) -> str:
    """The sender a channel's messages come from: the key its pace is shared under."""
    if channel == "whatsapp":
        return settings.twilio_whatsapp_from or settings.twilio_messaging_service_sid or "whatsapp"
    return settings.twilio_sms_from or settings.twilio_messaging_service_sid or "sms"


@dataclass
class Preview:
    """What the mobilizer confirms before sending."""

    recipients: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, lang)
    templates: int = 0  # WhatsApp recipients outside the window who get the template
    skipped: Counter[str] = field(default_factory=Counter)
    segments: dict[tuple[str, str], int] = field(default_factory=dict)  # per message
    total_segments: int = 0
    cost: float = 0.0
    currency: str = "USD"
    seconds: float = 0.0  # at the configured pace; 0 when unpaced

    @property
    def total(self) -> int:
        return sum(self.recipients.values())

    def lines(self) -> list[str]:
        """The preview as short lines (SMS, command line)."""
        out = [f"Recipients: {self.total}"]
        for (channel, language), n in sorted(self.recipients.items()):
            segs = self.segments.get((channel, language), 1)
            out.append(f"  {channel} {language}: {n} ({segs} segment{'s' * (segs != 1)} each)")
        if self.templates:
            out.append(f"  WhatsApp template outside the 24 h window: {self.templates}")
        out.append(f"Segments: {self.total_segments}")
        out.append(f"Cost: about {self.cost:.2f} {self.currency}")
        minutes = self.seconds / 60
        out.append(
            f"Time: about {minutes:.0f} min" if self.seconds else "Time: as fast as Twilio takes"
        )
        if self.skipped:
            out.append(
                "Skipped: "
                + ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in self.skipped.items())
            )
        return out


def preview(
    db: Database, settings: Settings, audience: Audience, message: Message, now: datetime
) -> Preview:
    """Counts what sending `message` to `audience` now would do (streamed: any audience size)."""
    result = Preview(currency=settings.currency)
    units: Counter[str] = Counter()
    for rows in stream(db, audience):
        for contact in rows:
            chosen = route(contact, message, now)
            if chosen.skip is not None or chosen.channel is None:
                result.skipped[chosen.skip or NO_CHANNEL] += 1
                continue
            key = (chosen.channel, chosen.language)
            result.recipients[key] += 1
            result.segments[key] = chosen.segments
            result.templates += chosen.content_sid is not None
            result.total_segments += chosen.segments
            result.cost += chosen.segments * price_of(settings, chosen.channel, contact.phone)
            units[chosen.channel] += chosen.segments
    # Channels have their own senders and go out side by side: the slowest one decides.
    durations = [
        n / pace
        for channel, n in units.items()
        if (pace := settings.pace_for(channel, sender_of(settings, channel))) > 0
    ]
    result.seconds = max(durations, default=0.0)
    return result
