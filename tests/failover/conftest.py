"""Fixtures for failover: Sparrow first, then Twilio SMS, both local fakes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_sparrow import FakeSparrow
from tests.support.clock import FakeClock
from tests.support.sparrow import sparrow, sparrow_settings

__all__ = ["sparrow"]  # the fake Sparrow API fixture, shared with tests/channels/sparrow


@pytest.fixture
def settings_overrides(sparrow: FakeSparrow) -> dict[str, str]:
    return {
        **sparrow_settings(sparrow.url),
        "CHANNEL_ORDER": "whatsapp,sms:sparrow,sms",
        "FAILOVER_AFTER": "3",
        "FAILOVER_PROBE_SECONDS": "60",
        "BROADCAST_PACE": "sms=0,sms:sparrow=0,whatsapp=0",
        "PRICE_PER_SEGMENT": "sms=0.0079,sms:+977=0.02,sms:sparrow=0.5,whatsapp=0.005",
    }


@pytest.fixture
def runtime(settings: Settings, clock: FakeClock) -> Iterator[Runtime]:
    rt = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    rt.failover.ttl = 0  # every check reads the shared table (no cache across the test)
    yield rt
    rt.close()
