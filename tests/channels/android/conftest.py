"""Fixtures for the Android gateway channel: a pool of fake phones, a deployment with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.channels.android.sender import AndroidChannel
from bot.runtime import Runtime
from testkit.fake_android import FakeAndroidPhone
from testkit.fake_rasa import FakeRasa
from tests.support.android import SHARED_KEY, AndroidPerson, phones_setting
from tests.support.builders import new_phone
from tests.support.clock import FakeClock
from tests.support.deployment import with_nlu


@pytest.fixture
def phones() -> Iterator[list[FakeAndroidPhone]]:
    """Three gateway phones, each with its own signing key, started and stopped per test."""
    pool = [FakeAndroidPhone(signing_key=f"phone-{i}-signing-key").start() for i in (1, 2, 3)]
    yield pool
    for phone in pool:
        phone.stop()


@pytest.fixture
def settings_overrides(phones: list[FakeAndroidPhone]) -> dict[str, str]:
    """The pool enabled (Twilio too, from the shared `env`), paced fast enough for tests."""
    return {
        "ANDROID_GATEWAY_PHONES": phones_setting(phones),
        "ANDROID_GATEWAY_SIGNING_KEY": SHARED_KEY,
        "ANDROID_GATEWAY_PACE": "6000",
        "ANDROID_GATEWAY_MAX_FAILURES": "2",
        "ANDROID_GATEWAY_PROBE_SECONDS": "60",
        "SEND_TIMEOUT_SECONDS": "2",
    }


def android_channel(runtime: Runtime) -> AndroidChannel:
    """The runtime's Android adapter, its pool on the runtime's (fake) clock."""
    channel = runtime.outbox.routes["android"]
    assert isinstance(channel, AndroidChannel)
    channel.pool.clock = runtime.clock
    return channel


@pytest.fixture
def channel(runtime: Runtime) -> Iterator[AndroidChannel]:
    found = android_channel(runtime)
    yield found
    found.close()


@pytest.fixture
def person(client, phones: list[FakeAndroidPhone], channel: AndroidChannel) -> AndroidPerson:  # type: ignore[no-untyped-def]
    return AndroidPerson(client, phones, new_phone())


@pytest.fixture
def android_member(
    env: dict[str, str],
    settings_overrides: dict[str, str],
    rasa: FakeRasa,
    clock: FakeClock,
    phones: list[FakeAndroidPhone],
) -> Iterator[AndroidPerson]:
    """A person texting the pool of a service that has NLU (the fake Rasa server)."""
    with with_nlu(env, settings_overrides, rasa.url, clock) as (runtime, client):
        channel = android_channel(runtime)
        yield AndroidPerson(client, phones, new_phone())
        channel.close()
