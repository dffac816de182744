"""Phone numbers in E.164, parsed with the `phonenumbers` library (default region Nepal)."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    """The text is not a possible phone number."""


def to_e164(raw: str, region: str = "NP") -> str:
    """Normalizes a phone number to E.164.

    >>> to_e164("9812345678")
    '+9779812345678'
    >>> to_e164("+1 (415) 555-2671")
    '+14155552671'
    """
    text = raw.strip()
    if not text or len(text) > 32:
        raise InvalidPhone(f"not a phone number: {raw[:40]!r}")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw[:40]!r}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"not a possible phone number: {raw[:40]!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
