"""How each recipient is reached, what it costs and how long the whole broadcast takes.

The same decision is used by the preview and by fan-out, so the preview is what happens: the
first of the contact's candidate routes (bot/channel_order.py: the way they last wrote first,
then CHANNEL_ORDER). WhatsApp is a candidate with free text inside the 24-hour window and
with the approved template outside it; a contact no route reaches is skipped with the reason.
Cost is priced per route (channel and provider) and country prefix.

Routes that are down now (bot/failover.py): the preview counts their contacts on the route
they would move to; fan-out still writes each row with the contact's preferred route, and the
outbox moves it at send time while that route is down (so a route that comes back gets its
messages back, and its probe is one of them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.broadcasts.audience import Audience, stream
from bot.channel_order import DEFAULT_ORDER, WHATSAPP_WINDOW, Reach, Routes, parse_order
from bot.channel_order import Route as RouteKey
from bot.core.segments import count_segments
from bot.db.database import Database
from bot.failover import down_routes
from bot.settings import Settings

__all__ = ["WHATSAPP_WINDOW", "Message", "Preview", "Route", "preview", "price_of", "route"]

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
    """One recipient's message: route, text or template, cost units, or why skipped.

    `template` is the approved WhatsApp template for the contact's language whatever the
    route: the outbox needs it if failover moves the message to WhatsApp outside the window.
    """

    channel: str | None
    language: str
    body: str
    segments: int
    content_sid: str | None = None
    skip: str | None = None
    provider: str | None = None
    template: str | None = None

    @property
    def name(self) -> str:
        """The route as CHANNEL_ORDER writes it ("sms:sparrow"); "" when skipped."""
        return str(RouteKey(self.channel, self.provider)) if self.channel else ""


def route(
    contact: Any,
    message: Message,
    now: datetime,
    routes: Routes | None = None,
    down: frozenset[RouteKey] = frozenset(),
) -> Route:
    """Decides how `contact` (an audience row) gets `message` at `now`: the first of its
    candidate routes (`routes`, by default today's order "whatsapp,sms") not in `down`; the
    first candidate when every one is down (the outbox waits for it to come back)."""
    language = contact.language if contact.language in ("en", "ne") else "en"
    body = message.body(language)
    if contact.opted_out:
        return Route(None, language, body, 0, skip=OPTED_OUT)
    reach = Reach.of(contact)
    template = message.template(language)
    plan = (routes or DEFAULT_ROUTES).plan(
        reach, now, first=reach.last_route, template=bool(template)
    )
    if not plan:
        on_whatsapp = reach.has_whatsapp or reach.channel == "whatsapp"
        return Route(None, language, body, 0, skip=OUTSIDE_WINDOW if on_whatsapp else NO_CHANNEL)
    chosen = next((r for r in plan if r not in down), plan[0])
    if chosen.channel == "whatsapp":
        content_sid = None if reach.window_open(now) else template
        return Route("whatsapp", language, body, 1, content_sid, None, chosen.provider, template)
    segments = count_segments(body).segments
    return Route("sms", language, body, segments, None, None, chosen.provider, template)


DEFAULT_ROUTES = Routes(parse_order(DEFAULT_ORDER))


def price_of(settings: Settings, channel: str, phone: str, provider: str | None = None) -> float:
    """Price per segment, the most specific PRICE_PER_SEGMENT entry that matches: the
    provider's with the longest matching country prefix ("sms:sparrow:+977"), the provider's
    ("sms:sparrow"), the channel's with the longest prefix ("sms:+977"), the channel's."""
    best, rank = settings.prices.get(channel, 0.0), (0, 0)
    for key, price in settings.prices.items():
        name, _, rest = key.partition(":")
        if name != channel or not rest:
            continue
        named, _, prefix = rest.partition(":") if not rest.startswith("+") else ("", "", rest)
        if named and named != provider:
            continue
        if prefix and not phone.startswith(prefix):
            continue
        candidate = (2 if named else 1, len(prefix))
        if candidate > rank:
            best, rank = price, candidate
    return best


def sender_of(settings: Settings, channel: str, provider: str | None = None) -> str:
    """The sender a route's messages come from: the key its pace is shared under (by every
    worker). The channel's default adapter sends from the Twilio number or service; another
    provider from its own sender, keyed by its route ("sms:sparrow")."""
    if provider is not None:
        return f"{channel}:{provider}"
    if channel == "whatsapp":
        return settings.twilio_whatsapp_from or settings.twilio_messaging_service_sid or "whatsapp"
    return settings.twilio_sms_from or settings.twilio_messaging_service_sid or "sms"


@dataclass
class RouteCost:
    """One route's share of a broadcast: recipients, segments (WhatsApp: messages), cost."""

    recipients: int = 0
    segments: int = 0
    cost: float = 0.0


@dataclass
class Preview:
    """What the mobilizer confirms before sending."""

    # (route, language): route as CHANNEL_ORDER writes it ("sms", "sms:sparrow", "whatsapp")
    recipients: Counter[tuple[str, str]] = field(default_factory=Counter)
    templates: int = 0  # WhatsApp recipients outside the window who get the template
    skipped: Counter[str] = field(default_factory=Counter)
    segments: dict[tuple[str, str], int] = field(default_factory=dict)  # per message
    total_segments: int = 0
    cost: float = 0.0
    currency: str = "USD"
    seconds: float = 0.0  # at the configured pace; 0 when unpaced
    routes: dict[str, RouteCost] = field(default_factory=dict)  # per route, by name
    down: tuple[str, ...] = ()  # routes down now (their contacts go by their next route)

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
        if len(self.routes) > 1 or any(":" in name for name in self.routes):
            for name, share in sorted(self.routes.items()):
                out.append(
                    f"  {name}: {share.recipients} recipients, {share.segments} segments, "
                    f"{share.cost:.2f} {self.currency}"
                )
        if self.down:
            out.append(f"Down now (their contacts go by the next route): {', '.join(self.down)}")
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
    db: Database,
    settings: Settings,
    audience: Audience,
    message: Message,
    now: datetime,
    routes: Routes | None = None,
) -> Preview:
    """Counts what sending `message` to `audience` now would do (streamed: any audience size).

    `routes`: the installation's routes (bot.runtime builds them); by default CHANNEL_ORDER
    with every provider name taken as written."""
    routes = routes or Routes(settings.channel_order)
    down = down_routes(db)
    result = Preview(currency=settings.currency, down=tuple(sorted(str(r) for r in down)))
    units: Counter[tuple[str, str | None]] = Counter()
    for rows in stream(db, audience):
        for contact in rows:
            chosen = route(contact, message, now, routes, down)
            if chosen.skip is not None or chosen.channel is None:
                result.skipped[chosen.skip or NO_CHANNEL] += 1
                continue
            key = (chosen.name, chosen.language)
            price = price_of(settings, chosen.channel, contact.phone, chosen.provider)
            result.recipients[key] += 1
            result.segments[key] = chosen.segments
            result.templates += chosen.content_sid is not None
            result.total_segments += chosen.segments
            result.cost += chosen.segments * price
            share = result.routes.setdefault(chosen.name, RouteCost())
            share.recipients += 1
            share.segments += chosen.segments
            share.cost += chosen.segments * price
            units[(chosen.channel, chosen.provider)] += chosen.segments
    # Routes have their own senders and go out side by side: the slowest one decides.
    durations = [
        n / pace
        for (channel, provider), n in units.items()
        if (pace := settings.pace_for(channel, sender_of(settings, channel, provider), provider))
        > 0
    ]
    result.seconds = max(durations, default=0.0)
    return result
