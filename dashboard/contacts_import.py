"""Importing contacts from CSV: read and check every row first, save only what the person saw.

The preview sorts rows into new contacts, updates of existing ones, and bad rows (an invalid
number, a repeated number, an unknown language, channel or group name), each with its line.
Importing never changes anyone's consent: a number that opted out stays opted out.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.db.models import ConsentEvent, Contact, ContactGroup, utcnow
from bot.personal_data.optouts import kept_among
from bot.phone import InvalidPhone, to_e164
from dashboard.accounts import AccountError, clean_groups

MAX_ROWS = 20_000
MAX_BYTES = 5 * 1024 * 1024
COLUMNS = ("phone", "name", "language", "channel", "district", "municipality", "ward", "groups")
LANGUAGE_WORDS = {
    "en": "en", "english": "en", "ne": "ne", "nepali": "ne", "नेपाली": "ne",
}  # fmt: skip
CHANNEL_WORDS = {"sms": "sms", "whatsapp": "whatsapp", "wa": "whatsapp"}
LIMITS = {"name": 200, "district": 64, "municipality": 64, "ward": 16}


class CsvImportError(ValueError):
    """The file cannot be read as a contacts CSV; the message says why."""


@dataclass(frozen=True)
class ContactRow:
    """A checked row, ready to save."""

    line: int
    phone: str
    name: str | None
    language: str | None
    channel: str
    district: str | None
    municipality: str | None
    ward: str | None
    groups: tuple[str, ...]


@dataclass(frozen=True)
class BadRow:
    """A row that will not be imported, and why."""

    line: int
    value: str
    reason: str


@dataclass
class Preview:
    """What an import would do."""

    new: list[ContactRow] = field(default_factory=list)
    updates: list[ContactRow] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.new) + len(self.updates) + len(self.bad)


def _header(names: Iterable[str]) -> list[str]:
    return [re.sub(r"\s+", "_", (n or "").strip().lower().lstrip("\ufeff")) for n in names]


def _text(value: str | None, column: str) -> str | None:
    text = " ".join((value or "").split())
    if len(text) > LIMITS[column]:
        raise ValueError(f"{column} is longer than {LIMITS[column]} characters")
    return text or None


def read_rows(
    data: bytes, region: str, default_channel: str
) -> tuple[list[ContactRow], list[BadRow]]:
    """Parses and checks a CSV file (UTF-8, a header row with at least `phone`).

    Raises:
        CsvImportError: the file is not UTF-8 text, has no `phone` column or too many rows.
    """
    if len(data) > MAX_BYTES:
        raise CsvImportError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvImportError("the file is not UTF-8 text: save it as “CSV UTF-8”") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = _header(next(reader))
    except StopIteration:
        raise CsvImportError("the file is empty") from None
    except csv.Error as exc:
        raise CsvImportError(f"the file is not CSV: {exc}") from None
    if "phone" not in header:
        raise CsvImportError(
            "the first row must name the columns, with at least “phone” "
            f"(known: {', '.join(COLUMNS)})"
        )
    good: list[ContactRow] = []
    bad: list[BadRow] = []
    seen: dict[str, int] = {}
    try:
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(good) + len(bad) >= MAX_ROWS:
                raise CsvImportError(f"the file has more than {MAX_ROWS:,} rows: split it")
            values = dict(zip(header, cells, strict=False))
            raw_phone = (values.get("phone") or "").strip()
            try:
                row = _check(line, values, region, default_channel)
            except ValueError as exc:
                bad.append(BadRow(line, raw_phone[:40], str(exc)))
                continue
            if row.phone in seen:
                bad.append(
                    BadRow(line, raw_phone[:40], f"the same number as line {seen[row.phone]}")
                )
                continue
            seen[row.phone] = line
            good.append(row)
    except csv.Error as exc:
        raise CsvImportError(f"the file is not valid CSV: {exc}") from None
    return good, bad


def _check(line: int, values: dict[str, str], region: str, default_channel: str) -> ContactRow:
    raw_phone = (values.get("phone") or "").strip()
    try:
        phone = to_e164(raw_phone, region)
    except InvalidPhone:
        raise ValueError("not a phone number" if raw_phone else "no phone number") from None
    language_raw = (values.get("language") or "").strip().lower()
    language = LANGUAGE_WORDS.get(language_raw) if language_raw else None
    if language_raw and language is None:
        raise ValueError(f"unknown language {language_raw[:20]!r} (en or ne)")
    channel_raw = (values.get("channel") or "").strip().lower()
    channel = CHANNEL_WORDS.get(channel_raw) if channel_raw else default_channel
    if channel is None:
        raise ValueError(f"unknown channel {channel_raw[:20]!r} (sms or whatsapp)")
    try:
        groups = clean_groups(re.split(r"[;,]", values.get("groups") or ""))
    except AccountError as exc:
        raise ValueError(str(exc)) from None
    return ContactRow(
        line=line,
        phone=phone,
        name=_text(values.get("name"), "name"),
        language=language,
        channel=channel,
        district=_text(values.get("district"), "district"),
        municipality=_text(values.get("municipality"), "municipality"),
        ward=_text(values.get("ward"), "ward"),
        groups=tuple(groups),
    )


def _existing(session: Session, phones: list[str]) -> dict[str, Contact]:
    found: dict[str, Contact] = {}
    for first in range(0, len(phones), 500):
        chunk = phones[first : first + 500]
        for contact in session.scalars(
            select(Contact).where(Contact.phone.in_(chunk), Contact.simulated.is_(False))
        ):
            found[contact.phone] = contact
    return found


def preview(db: Database, data: bytes, region: str, default_channel: str) -> Preview:
    """What importing `data` would do, without saving anything."""
    good, bad = read_rows(data, region, default_channel)
    with db.read() as session:
        known = _existing(session, [r.phone for r in good])
    result = Preview(bad=bad)
    for row in good:
        (result.updates if row.phone in known else result.new).append(row)
    return result


def save(
    db: Database,
    rows: list[ContactRow],
    extra_groups: Iterable[str] = (),
    phone_key: bytes | None = None,
) -> tuple[int, int]:
    """Creates or updates the contacts; returns (created, updated).

    New contacts are recorded in the consent log as opted in by import, except a number
    whose person was erased after opting out (its opt-out is kept as a keyed hash, checked
    with `phone_key`): that one comes in opted out, until the person sends START. Existing
    ones get the location fields the file gives and the groups added; their consent is left
    alone.
    """
    added_groups = tuple(extra_groups)
    created = updated = 0
    now = utcnow()
    for first in range(0, len(rows), 500):
        chunk = rows[first : first + 500]
        with db.write() as session:
            known = _existing(session, [r.phone for r in chunk])
            new_phones = [r.phone for r in chunk if r.phone not in known]
            kept = kept_among(session, phone_key, new_phones) if phone_key else set()
            for row in chunk:
                contact = known.get(row.phone)
                if contact is None:
                    contact = Contact(
                        phone=row.phone,
                        simulated=False,
                        channel=row.channel,
                        has_sms=row.channel == "sms",
                        has_whatsapp=row.channel == "whatsapp",
                        profile_name=row.name,
                        language=row.language,
                        opted_out=row.phone in kept,
                        opted_out_at=now if row.phone in kept else None,
                        version=0,
                        district=row.district,
                        municipality=row.municipality,
                        ward=row.ward,
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(contact)
                    session.flush()
                    session.add(
                        ConsentEvent(
                            contact_id=contact.id,
                            opted_out=row.phone in kept,
                            reason="opt_out_kept" if row.phone in kept else "import",
                            created_at=now,
                        )
                    )
                    have: set[str] = set()
                    created += 1
                else:
                    for name in ("district", "municipality", "ward"):
                        if getattr(row, name):
                            setattr(contact, name, getattr(row, name))
                    contact.profile_name = contact.profile_name or row.name
                    contact.language = contact.language or row.language
                    contact.updated_at = now
                    have = set(
                        session.scalars(
                            select(ContactGroup.group_name).where(
                                ContactGroup.contact_id == contact.id
                            )
                        )
                    )
                    updated += 1
                for group in dict.fromkeys((*row.groups, *added_groups)):
                    if group not in have:
                        session.add(ContactGroup(contact_id=contact.id, group_name=group))
    return created, updated
