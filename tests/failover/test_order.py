"""The channel order: which routes reach a contact, best first (bot/channel_order.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.channel_order import Reach, Route, Routes, candidates, parse_order
from bot.settings import Settings, SettingsError

NOW = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
ORDER = parse_order("whatsapp,sms:sparrow,sms:android,sms:twilio")


def reach(**kw: object) -> Reach:
    values: dict[str, object] = {"has_sms": True, "has_whatsapp": False, "channel": "sms"}
    values.update(kw)
    return Reach(**values)  # type: ignore[arg-type]


def names(routes: list[Route]) -> list[str]:
    return [str(r) for r in routes]


def test_parse_order_reads_channels_and_providers() -> None:
    assert names(list(ORDER)) == ["whatsapp", "sms:sparrow", "sms:android", "sms:twilio"]
    assert parse_order(" SMS , whatsapp ") == (Route("sms"), Route("whatsapp"))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("sms,fax", "unknown channel 'fax'"),
        ("sms:Bad-Name", "bad provider name"),
        ("sms:sparrow,sms:sparrow", "appears twice"),
        (" , ", "empty"),
    ],
)
def test_a_bad_channel_order_names_the_setting(value: str, error: str) -> None:
    env = {"DATABASE_URL": "sqlite:///x.db", "SECRET_KEY": "x" * 32, "CHANNEL_ORDER": value}
    with pytest.raises(SettingsError, match=f"CHANNEL_ORDER must be .*{error}"):
        Settings.from_mapping(env)


def test_failover_settings_are_checked() -> None:
    env = {"DATABASE_URL": "sqlite:///x.db", "SECRET_KEY": "x" * 32}
    with pytest.raises(SettingsError, match="FAILOVER_AFTER"):
        Settings.from_mapping(env | {"FAILOVER_AFTER": "0"})
    with pytest.raises(SettingsError, match="FAILOVER_PROBE_SECONDS"):
        Settings.from_mapping(env | {"FAILOVER_PROBE_SECONDS": "soon"})
    settings = Settings.from_mapping(env | {"CHANNEL_ORDER": "sms:sparrow,sms"})
    assert settings.channel_order == (Route("sms", "sparrow"), Route("sms"))
    assert Settings.from_mapping(env).channel_order == (Route("whatsapp"), Route("sms"))


def test_the_route_asked_for_comes_first_then_the_order() -> None:
    contact = reach(has_whatsapp=True, channel="whatsapp", last_inbound_at=NOW)
    # A reply to a WhatsApp message: WhatsApp first, then the SMS routes in order.
    plan = candidates(contact, ORDER, NOW, first=Route("whatsapp"))
    assert names(plan) == ["whatsapp", "sms:sparrow", "sms:android", "sms:twilio"]
    # A reply to a message that came by Android: that way first, no repeat later.
    plan = candidates(reach(), ORDER, NOW, first=Route("sms", "android"))
    assert names(plan) == ["sms:android", "sms:sparrow", "sms:twilio"]


def test_whatsapp_needs_the_window_or_a_template() -> None:
    stale = NOW - timedelta(hours=25)
    outside = reach(has_whatsapp=True, channel="whatsapp", last_inbound_at=stale)
    assert "whatsapp" not in names(candidates(outside, ORDER, NOW))
    assert names(candidates(outside, ORDER, NOW, template=True))[0] == "whatsapp"
    # Their last message came by SMS: the WhatsApp window is not known to be open.
    by_sms = reach(has_whatsapp=True, channel="sms", last_inbound_at=NOW)
    assert "whatsapp" not in names(candidates(by_sms, ORDER, NOW))
    whatsapp_only = reach(has_sms=False, has_whatsapp=True, channel="whatsapp", last_inbound_at=NOW)
    assert names(candidates(whatsapp_only, ORDER, NOW)) == ["whatsapp"]


def test_sms_routes_need_sms() -> None:
    whatsapp_only = reach(has_sms=False, has_whatsapp=True, channel="whatsapp")
    assert candidates(whatsapp_only, ORDER, NOW) == []


def test_routes_map_provider_names_to_what_the_installation_has() -> None:
    routes = Routes(ORDER, named=frozenset({"sparrow"}), defaults=frozenset({"twilio"}), known=True)
    # android is not configured: passed over; twilio is the channels' default adapter.
    assert names(routes.plan(reach(), NOW)) == ["sms:sparrow", "sms"]
    assert routes.unknown() == [Route("sms", "android")]
    # A contact who wrote through a provider no longer configured: its channel's default.
    assert names(routes.plan(reach(), NOW, first=Route("sms", "android"))) == ["sms", "sms:sparrow"]
    # Nothing known (no registry): names are kept as written.
    assert names(Routes(ORDER).plan(reach(), NOW))[-1] == "sms:twilio"
