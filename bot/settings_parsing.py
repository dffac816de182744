"""How a setting's text becomes a checked value: the helpers every settings parser shares.

bot/settings.py parses the service's settings with them, and so does each provider's
`bot/channels/<name>/settings.py` (bot/channels/registry.py's contract), which may import
nothing else of the service: this module is the bottom of the layers (.importlinter), so
bot.settings can load a provider's settings without a cycle. Every error is a
`SettingsError` whose message names the setting.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

# How a parser reads the environment: the stripped value of a variable, None when unset.
Get = Callable[[str], str | None]


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


def parse_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    """`value` as a URL with one of `schemes` and a host, without a trailing slash."""
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise SettingsError(
            f"{name} must be a URL starting with {' or '.join(schemes)}://, got {value!r}"
        )
    return value.rstrip("/")


def parse_int(name: str, value: str, minimum: int, maximum: int) -> int:
    """`value` as a whole number between `minimum` and `maximum`."""
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
    if not minimum <= number <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {number}")
    return number


def parse_bool(name: str, value: str) -> bool:
    """`value` as true (1, true, yes, on) or false (0, false, no, off, empty)."""
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false, got {value!r}")


def parse_token(name: str, value: str | None) -> str | None:
    """A shared secret: at least 16 URL-safe characters (it travels in URLs and commands)."""
    if value is None:
        return None
    if len(value) < 16 or not all(ch.isascii() and (ch.isalnum() or ch in "-_.~") for ch in value):
        raise SettingsError(f"{name} must be at least 16 characters of A-Z a-z 0-9 - _ . ~")
    return value
