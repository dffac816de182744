"""Who a broadcast goes to: filters on groups, language, channel and location."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, exists, func, select

from bot.db.database import Database
from bot.db.models import Contact, ContactGroup

LANGUAGES = ("en", "ne")
CHANNELS = ("sms", "whatsapp")


class AudienceError(ValueError):
    """An audience filter is malformed; the message names it."""


def _names(raw: Any, field: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise AudienceError(f"{field}: expected a list of names")
    values = tuple(sorted({v.strip() for v in raw}))
    if allowed is not None:
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise AudienceError(f"{field}: unknown {unknown}, expected some of {list(allowed)}")
    return values


@dataclass(frozen=True)
class Audience:
    """All opted-in contacts, narrowed by any of these filters (empty = no filter)."""

    groups: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    district: str | None = None
    municipality: str | None = None
    ward: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Audience:
        """Reads and checks an audience (from the database, a form or the command line)."""
        raw = dict(raw or {})
        allowed = {"groups", "languages", "channels", "district", "municipality", "ward"}
        extra = set(raw) - allowed
        if extra:
            raise AudienceError(f"unknown audience fields {sorted(extra)}")

        def place(name: str) -> str | None:
            value = raw.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                return None
            if not isinstance(value, str | int):
                raise AudienceError(f"{name}: expected a name")
            return str(value).strip()

        return cls(
            groups=_names(raw.get("groups"), "groups"),
            languages=_names(raw.get("languages"), "languages", LANGUAGES),
            channels=_names(raw.get("channels"), "channels", CHANNELS),
            district=place("district"),
            municipality=place("municipality"),
            ward=place("ward"),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in ("groups", "languages", "channels"):
            if getattr(self, name):
                data[name] = list(getattr(self, name))
        for name in ("district", "municipality", "ward"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        return data

    def describe(self) -> str:
        """A short human description, e.g. "groups ward-3; language ne"."""
        parts = [
            f"{k} {', '.join(v) if isinstance(v, list) else v}" for k, v in self.to_json().items()
        ]
        return "; ".join(parts) or "everyone"


def effective_language() -> Any:
    """The language a contact gets: their choice, else the one we last spoke, else English."""
    return func.coalesce(Contact.language, Contact.last_language, "en")


def audience_query(audience: Audience) -> Select[Any]:
    """The contacts (not simulated) an audience covers, opted out or not, by id."""
    query = select(
        Contact.id,
        Contact.phone,
        Contact.channel,
        effective_language().label("language"),
        Contact.has_sms,
        Contact.has_whatsapp,
        Contact.opted_out,
        Contact.last_inbound_at,
        Contact.last_provider,
    ).where(Contact.simulated.is_(False))
    if audience.groups:
        query = query.where(
            exists().where(
                and_(
                    ContactGroup.contact_id == Contact.id,
                    ContactGroup.group_name.in_(audience.groups),
                )
            )
        )
    if audience.languages:
        query = query.where(effective_language().in_(audience.languages))
    if audience.channels:
        query = query.where(Contact.channel.in_(audience.channels))
    for name in ("district", "municipality", "ward"):
        value = getattr(audience, name)
        if value is not None:
            query = query.where(getattr(Contact, name) == value)
    return query.order_by(Contact.id)


def stream(
    db: Database, audience: Audience, after_id: int = 0, batch: int = 1000
) -> Iterator[list[Any]]:
    """The audience in batches of rows, by keyset on contact id (constant memory)."""
    query = audience_query(audience)
    last = after_id
    while True:
        with db.begin_read() as conn:
            rows = list(conn.execute(query.where(Contact.id > last).limit(batch)).all())
        if not rows:
            return
        yield rows
        last = rows[-1].id
