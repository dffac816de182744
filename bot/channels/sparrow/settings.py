"""Sparrow SMS's settings (issue 11), parsed and checked: errors name the setting.

Found by bot/settings.py (`Settings.provider("sparrow", SparrowSettings)`) like every
provider's settings.py (bot/channels/registry.py's contract): it imports nothing of the
service but bot.settings_parsing.

- SPARROW_TOKEN: the API token; setting it enables Sparrow (replies to the people who wrote
  through it go back through it).
- SPARROW_FROM: the sender identity Sparrow gave the account (required with the token).
- SPARROW_API_BASE: its API base (tests point it at testkit/fake_sparrow.py).
- SPARROW_INBOUND_TOKEN: the secret in the inbound URL registered with Sparrow.
- SPARROW_ALLOWED_IPS: the source networks that inbound URL accepts (empty: any).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

from bot.settings_parsing import Get, SettingsError, parse_token, parse_url

DEFAULT_API_BASE = "https://api.sparrowsms.com"
# Broadcast pace of the route (segments per second; BROADCAST_PACE's sms:sparrow overrides
# it): Sparrow documents no limit; a short code carries ~100/s, 10 leaves room for replies.
DEFAULT_PACE_PER_SECOND = 10.0


@dataclass(frozen=True)
class SparrowSettings:
    """Sparrow's account, sender, API and inbound URL's guards."""

    token: str | None = field(default=None, repr=False)
    sender: str | None = None
    api_base: str = DEFAULT_API_BASE
    inbound_token: str | None = field(default=None, repr=False)
    allowed_ips: tuple[IPv4Network | IPv6Network, ...] = ()
    pace_per_second: float = DEFAULT_PACE_PER_SECOND

    @property
    def enabled(self) -> bool:
        """True when replies to Sparrow's inbound messages go back through Sparrow."""
        return bool(self.token)


def parse(get: Get) -> SparrowSettings:
    """Sparrow's settings from the environment; raises SettingsError naming the setting."""
    token = get("SPARROW_TOKEN") or None
    sender = (get("SPARROW_FROM") or "").strip() or None
    if token and not sender:
        raise SettingsError("SPARROW_FROM (the sender identity Sparrow gave you) is required")
    inbound = parse_token("SPARROW_INBOUND_TOKEN", get("SPARROW_INBOUND_TOKEN") or None)
    networks: list[IPv4Network | IPv6Network] = []
    for item in (get("SPARROW_ALLOWED_IPS") or "").replace(" ", ",").split(","):
        if not item:
            continue
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(
                f"SPARROW_ALLOWED_IPS must be addresses or CIDRs separated by commas, got {item!r}"
            ) from None
    return SparrowSettings(
        token=token,
        sender=sender,
        api_base=parse_url(
            "SPARROW_API_BASE", get("SPARROW_API_BASE") or DEFAULT_API_BASE, ("http", "https")
        ),
        inbound_token=inbound,
        allowed_ips=tuple(networks),
    )
