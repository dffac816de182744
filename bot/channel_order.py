"""Which channel and provider a message to a contact goes by, in order of preference.

Pure: no I/O, no provider knowledge. A route is a channel and a provider name
(`Route("sms", "sparrow")`) or the channel's default adapter (`Route("sms")`: Twilio when an
account is configured, the console in development). It is written the way CHANNEL_ORDER
writes it: `sms:sparrow`, `sms`, `whatsapp`.

`candidates` lists every route that can reach a contact, best first: the route asked for
first (a reply: the way the message came in; a broadcast: the way the contact last wrote),
then CHANNEL_ORDER. The outbox takes the first one whose provider is up (bot/failover.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

CHANNELS = ("sms", "whatsapp")
WHATSAPP_WINDOW = timedelta(hours=24)
DEFAULT_ORDER = "whatsapp,sms"
_PROVIDER = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class Route:
    """A channel and the provider that carries it (None: the channel's default adapter)."""

    channel: str
    provider: str | None = None

    def __str__(self) -> str:
        return self.channel if self.provider is None else f"{self.channel}:{self.provider}"

    @classmethod
    def parse(cls, text: str) -> Route:
        """`sms`, `whatsapp` or `channel:provider`; raises ValueError naming what is wrong."""
        channel, sep, provider = text.strip().lower().partition(":")
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r} in {text.strip()!r}")
        if sep and not _PROVIDER.fullmatch(provider):
            raise ValueError(f"bad provider name {provider!r} in {text.strip()!r}")
        return cls(channel, provider or None)


def parse_order(value: str) -> tuple[Route, ...]:
    """Parses a CHANNEL_ORDER value: comma-separated routes, each at most once.

    Raises:
        ValueError: an entry is not a route, or appears twice, or the list is empty.
    """
    routes: list[Route] = []
    for item in value.split(","):
        if not item.strip():
            continue
        route = Route.parse(item)
        if route in routes:
            raise ValueError(f"{route} appears twice")
        routes.append(route)
    if not routes:
        raise ValueError("the list is empty")
    return tuple(routes)


@dataclass(frozen=True)
class Reach:
    """What routing needs to know about a contact (a `contacts` row or an audience row)."""

    has_sms: bool
    has_whatsapp: bool
    channel: str  # the channel of their last message
    last_provider: str | None = None  # the provider of their last message
    last_inbound_at: datetime | None = None

    @classmethod
    def of(cls, contact: Any) -> Reach:
        """From any object with the `contacts` columns of the same names."""
        return cls(
            has_sms=bool(contact.has_sms),
            has_whatsapp=bool(contact.has_whatsapp),
            channel=contact.channel,
            last_provider=getattr(contact, "last_provider", None),
            last_inbound_at=contact.last_inbound_at,
        )

    @property
    def last_route(self) -> Route:
        """The way they last wrote."""
        return Route(self.channel, self.last_provider)

    def window_open(self, now: datetime) -> bool:
        """WhatsApp's 24-hour window: free text is allowed. Known open only when their last
        message (the one `last_inbound_at` dates) came by WhatsApp."""
        last = self.last_inbound_at
        recent = last is not None and now - last < WHATSAPP_WINDOW
        return recent and (self.channel == "whatsapp" or not self.has_sms)


def reaches(contact: Reach, route: Route, now: datetime, template: bool) -> bool:
    """Whether `route` can carry a message to `contact` now (`template`: an approved WhatsApp
    template exists for it, so WhatsApp works outside the window too)."""
    if route.channel == "whatsapp":
        on_whatsapp = contact.has_whatsapp or contact.channel == "whatsapp"
        return on_whatsapp and (template or contact.window_open(now))
    return contact.has_sms or contact.channel == "sms"


def candidates(
    contact: Reach,
    order: tuple[Route, ...],
    now: datetime,
    *,
    first: Route | None = None,
    template: bool = False,
) -> list[Route]:
    """Every route that can reach `contact`, best first, without repeats: `first`, then
    `order`. A route whose provider the order does not name keeps its place only as `first`.
    """
    listed = [first, *order] if first is not None else list(order)
    out: list[Route] = []
    for route in listed:
        if route is not None and route not in out and reaches(contact, route, now, template):
            out.append(route)
    return out


@dataclass(frozen=True)
class Routes:
    """This installation's routes: CHANNEL_ORDER and the providers it has.

    Attributes:
        order: CHANNEL_ORDER.
        named: providers that carry only the messages naming them ("sparrow", "android").
        defaults: providers whose adapters are their channels' default ("twilio"): a route
            naming one is the channel's default route (`Route("sms")`).
        known: False when nothing is known about the providers (every name is kept as is).
    """

    order: tuple[Route, ...]
    named: frozenset[str] = frozenset()
    defaults: frozenset[str] = frozenset()
    known: bool = False

    def canonical(self, route: Route) -> Route | None:
        """The route as the outbox sends it; None for a provider this installation lacks."""
        if route.provider is None or not self.known or route.provider in self.named:
            return route
        if route.provider in self.defaults:
            return Route(route.channel)
        return None

    def unknown(self) -> list[Route]:
        """Entries of the order naming a provider this installation does not have."""
        return [route for route in self.order if self.canonical(route) is None]

    def plan(
        self, contact: Reach, now: datetime, *, first: Route | None = None, template: bool = False
    ) -> list[Route]:
        """`candidates` in canonical form. `first` naming a provider this installation lacks
        (no longer configured) becomes its channel's default route, as the outbox sends it."""
        if first is not None:
            first = self.canonical(first) or Route(first.channel)
        order = tuple(r for r in (self.canonical(route) for route in self.order) if r is not None)
        return candidates(contact, order, now, first=first, template=template)
