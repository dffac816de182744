"""Pace per route: each provider's sender is paced under its own key, with its default."""

from __future__ import annotations

from dataclasses import replace

from bot.broadcasts.pacing import Pacer
from bot.broadcasts.ports import BroadcastPorts
from bot.broadcasts.sending import _pace, _paced_as
from bot.channel_order import Route
from bot.runtime import Runtime
from bot.settings import Settings

# One Android phone: the pool's route goes at its phones' pace together (6 a minute each).
ONE_PHONE = {"ANDROID_GATEWAY_PHONES": "p=http://127.0.0.1:9,u,pw,signing-key-1"}


def test_each_route_has_its_own_sender_key_and_default_pace(
    env: dict[str, str], runtime: Runtime
) -> None:
    ports = replace(runtime.broadcasts, settings=Settings.from_mapping(env | ONE_PHONE))
    assert _pace(ports, "sms", "sparrow") == ("sms:sparrow", 10.0)  # an aggregator
    assert _pace(ports, "sms", "android") == ("sms:android", 0.1)  # a phone: ~6 a minute
    twilio_number = ports.settings.twilio_sms_from
    assert twilio_number is not None
    assert _pace(ports, "sms", None) == (twilio_number, 1.0)  # a long code: 1 segment/s


def test_broadcast_pace_overrides_a_route(env: dict[str, str], runtime: Runtime) -> None:
    settings = Settings.from_mapping(env | ONE_PHONE | {"BROADCAST_PACE": "sms:sparrow=3,sms=2"})
    ports: BroadcastPorts = replace(runtime.broadcasts, settings=settings)
    assert _pace(ports, "sms", "sparrow") == ("sms:sparrow", 3.0)
    assert _pace(ports, "sms", None)[1] == 2.0
    assert _pace(ports, "sms", "android")[1] == 0.1


def test_routes_draw_from_separate_budgets() -> None:
    waits: list[float] = []
    pacer = Pacer(sleep=waits.append)
    assert pacer.acquire("sms:sparrow", 1.0, 10)  # sparrow's window is full now
    assert pacer.acquire("+15005550006", 1.0, 1)  # Twilio's number is not held up by it
    assert waits == []
    assert not pacer.acquire("sms:sparrow", 1.0, 1, deadline=0.0)  # sparrow must wait


def test_while_a_route_is_down_its_rows_are_paced_as_the_route_taking_its_load(
    runtime: Runtime,
) -> None:
    sparrow, default = Route("sms", "sparrow"), Route("sms")
    ports = runtime.broadcasts
    assert _paced_as(ports, "sms", "sparrow", frozenset()) == ("sms", "sparrow")
    assert _paced_as(ports, "sms", "sparrow", frozenset({sparrow})) == ("sms", None)
    everything = frozenset({sparrow, default})
    assert _paced_as(ports, "sms", "sparrow", everything) == ("sms", "sparrow")  # it waits
