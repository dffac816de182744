"""Keeping personal data out of logs and console output: masked phone numbers.

A log line names a person by a masked number (`+97798*****678`: country code, the first two
and the last three digits), enough to tell two people apart while reading a log, not enough
to call them. Prefer ids (message, contact) wherever a log line can carry one.
"""

from __future__ import annotations

import re

import phonenumbers

# Runs of 7 or more digits, optionally with a leading + and single spaces, dots or dashes
# between digits: what a phone number in free text looks like.
_PHONE_LIKE = re.compile(r"\+?\d(?:[ .\-]?\d){6,}")


def mask_phone(phone: str) -> str:
    """A phone number with its middle digits hidden, for logs and console output.

    Keeps a `whatsapp:` (or any `scheme:`) prefix, the country code, the first two and the
    last three digits of the national number.

    >>> mask_phone("+9779812345678")
    '+97798*****678'
    >>> mask_phone("whatsapp:+14155552671")
    'whatsapp:+141*****671'
    >>> mask_phone("9812345678")
    '98*****678'
    """
    prefix, sep, number = phone.rpartition(":")
    prefix = prefix + sep
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits:
        return prefix + "*" * min(len(number), 8)
    country = ""
    national = digits
    if number.strip().startswith("+"):
        try:
            parsed = phonenumbers.parse("+" + digits, None)
            country = str(parsed.country_code)
        except phonenumbers.NumberParseException:
            country = digits[:1]
        national = digits[len(country) :]
    lead = "+" + country if number.strip().startswith("+") else ""
    if len(national) <= 5:  # too short to show anything of it
        return f"{prefix}{lead}{'*' * len(national)}"
    hidden = "*" * (len(national) - 5)
    return f"{prefix}{lead}{national[:2]}{hidden}{national[-3:]}"


def scrub_phones(text: str) -> str:
    """`text` with everything that looks like a phone number masked (for provider errors).

    >>> scrub_phones("The 'To' number +9779812345678 is not valid")
    "The 'To' number +97798*****678 is not valid"
    """
    return _PHONE_LIKE.sub(lambda m: mask_phone(re.sub(r"[ .\-]", "", m.group(0))), text)
