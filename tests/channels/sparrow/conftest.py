"""Fixtures for the Sparrow SMS channel: its fake API, a deployment with it, a phone."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from bot.channels.sparrow import webhook
from testkit.fake_rasa import FakeRasa
from testkit.fake_sparrow import FakeSparrow
from tests.support.builders import new_phone
from tests.support.clock import FakeClock
from tests.support.deployment import with_nlu
from tests.support.sparrow import SparrowPhone, sparrow, sparrow_settings

__all__ = ["sparrow"]  # the fake Sparrow API fixture, shared with tests/failover


@pytest.fixture
def settings_overrides(sparrow: FakeSparrow) -> dict[str, str]:
    """Sparrow enabled (Twilio too, from the shared `env`)."""
    return sparrow_settings(sparrow.url)


@pytest.fixture(autouse=True)
def arrival_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Each delivery arrives a minute after the last, so texts a person repeats are distinct
    deliveries; a test pins the time (`arrival_clock.append(t)`) to repeat one delivery."""
    pinned: list[float] = []
    minutes = itertools.count(1_800_000_000, 60)
    monkeypatch.setattr(webhook, "clock", lambda: pinned[-1] if pinned else next(minutes))
    yield pinned


@pytest.fixture
def sparrow_phone(client, sparrow: FakeSparrow) -> SparrowPhone:  # type: ignore[no-untyped-def]
    return SparrowPhone(client, sparrow, new_phone())


@pytest.fixture
def sparrow_member(
    env: dict[str, str],
    settings_overrides: dict[str, str],
    rasa: FakeRasa,
    clock: FakeClock,
    sparrow: FakeSparrow,
) -> Iterator[SparrowPhone]:
    """A Sparrow phone talking to the service that has NLU (the fake Rasa server)."""
    with with_nlu(env, settings_overrides, rasa.url, clock) as (_, client):
        yield SparrowPhone(client, sparrow, new_phone())
