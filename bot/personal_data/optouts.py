"""Opt-outs that outlive erasure: a keyed hash of the number stands for the person.

An erased person who had opted out must stay opted out if their number comes back (they text
again, a file imports it, a broadcast's audience would include it). The number itself is
gone; HMAC-SHA256 of it under a secret key (PHONE_HASH_KEY, else SECRET_KEY) is kept in
`kept_opt_outs`. Without the key the hash cannot be tested against a list of numbers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.orm import Session

from bot.db.models import KeptOptOut


def phone_hash(key: bytes, phone: str) -> str:
    """The keyed hash (hex) that stands for an E.164 number.

    >>> phone_hash(b"k" * 16, "+9779812345678") == phone_hash(b"k" * 16, "+9779812345678")
    True
    """
    return hmac.new(key, phone.encode("utf-8"), hashlib.sha256).hexdigest()


def keep(session: Session | Connection, key: bytes, phone: str, now: datetime) -> None:
    """Records that `phone` opted out, before its contact row is erased (idempotent)."""
    digest = phone_hash(key, phone)
    known = select(KeptOptOut.phone_hash).where(KeptOptOut.phone_hash == digest)
    if session.execute(known).first():
        return
    session.execute(insert(KeptOptOut).values(phone_hash=digest, created_at=now))


def release(conn: Session | Connection, key: bytes, phone: str) -> None:
    """Forgets the kept opt-out of `phone`: the person sent START."""
    conn.execute(delete(KeptOptOut).where(KeptOptOut.phone_hash == phone_hash(key, phone)))


def kept_among(session: Session | Connection, key: bytes, phones: Iterable[str]) -> set[str]:
    """The numbers among `phones` whose opt-out is kept."""
    by_hash = {phone_hash(key, p): p for p in phones}
    found: set[str] = set()
    hashes = list(by_hash)
    for first in range(0, len(hashes), 500):
        chunk = hashes[first : first + 500]
        found.update(
            by_hash[h]
            for h in session.execute(
                select(KeptOptOut.phone_hash).where(KeptOptOut.phone_hash.in_(chunk))
            ).scalars()
        )
    return found
