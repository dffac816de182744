"""The Android pool's failures say whether a phone may have taken the message (`maybe_sent`):
not when no phone could be reached or a phone answered with its own error, maybe while a
phone that got the request and did not answer cannot be asked. A phone whose answer does not
say (a bare 5xx from something in between) is asked before another phone sends."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot.channels.android.api import classify
from bot.channels.android.sender import AndroidChannel
from bot.channels.base import SendError
from bot.core.messages import Channel, Language, Outbound
from bot.failover import maybe_delivered
from bot.settings import Settings
from testkit.fake_android import FakeAndroidPhone
from tests.support.android import PASSWORD
from tests.support.sockets import Backlogged, Endpoint, refused_url

MESSAGE = Outbound(Channel.SMS, "+9779812345678", "hello", Language.EN, "reply")


@pytest.fixture
def fake() -> Iterator[FakeAndroidPhone]:
    phone = FakeAndroidPhone(signing_key="phone-signing-key").start()
    yield phone
    phone.stop()


def pool_of(env: dict[str, str], *urls: str) -> AndroidChannel:
    """A pool of phones at `urls` (p1, p2...), one failure enough to take a phone out."""
    phones = ";".join(
        f"p{n}={url},sms,{PASSWORD},key-{n}-0123" for n, url in enumerate(urls, start=1)
    )
    settings = Settings.from_mapping(
        env
        | {
            "ANDROID_GATEWAY_PHONES": phones,
            "ANDROID_GATEWAY_PACE": "6000",
            "ANDROID_GATEWAY_MAX_FAILURES": "1",
            "SEND_TIMEOUT_SECONDS": "1",
        }
    )
    return AndroidChannel(settings)


def failure(channel: AndroidChannel) -> SendError:
    try:
        with pytest.raises(SendError) as raised:
            channel.send(MESSAGE)
    finally:
        channel.close()
    return raised.value


def test_a_phone_that_refuses_never_got_it(env: dict[str, str]) -> None:
    error = failure(pool_of(env, refused_url()))
    assert error.maybe_sent is False and not maybe_delivered(error)
    assert "no live phone" in str(error)


def test_a_phone_that_cannot_be_connected_to_in_time_never_got_it(env: dict[str, str]) -> None:
    backlogged = Backlogged()
    try:
        error = failure(pool_of(env, backlogged.url))
    finally:
        backlogged.close()
    assert error.maybe_sent is False


@pytest.mark.parametrize("mode", ["silent", "hang_up"])
def test_a_phone_that_got_the_request_and_cannot_be_asked_may_have_it(
    env: dict[str, str], fake: FakeAndroidPhone, mode: str
) -> None:
    phone = Endpoint(mode)
    try:
        error = failure(pool_of(env, phone.url, fake.url))
        # The send, then the lookup of the id it carried; never the other phone.
        assert [method for method, _ in phone.requests] == ["POST", "GET"]
    finally:
        phone.close()
    assert error.maybe_sent is True and maybe_delivered(error)
    assert fake.accepted == []


def test_a_bare_5xx_is_asked_about_before_another_phone_sends(
    env: dict[str, str], fake: FakeAndroidPhone
) -> None:
    def gateway_in_front(method: str, path: str) -> tuple[int, bytes]:
        if method == "POST":
            return 502, b""  # a proxy's answer: the phone behind it may have taken it
        return 404, json.dumps({"message": "Not Found"}).encode()  # it did not

    phone = Endpoint("answer", gateway_in_front)
    channel = pool_of(env, phone.url, fake.url)
    try:
        result = channel.send(MESSAGE)
    finally:
        channel.close()
        phone.close()
    assert [method for method, _ in phone.requests] == ["POST", "GET"]
    assert [m.id for m in fake.accepted] == [result.provider_id.removeprefix("android:")]


def test_what_each_answer_says_about_the_message() -> None:
    def maybe(status: int, payload: object) -> bool | None:
        error = classify(status, payload)
        assert error is not None
        return error.maybe_sent

    assert maybe(500, {"message": "scripted failure"}) is False  # the app's own error
    assert maybe(401, {"message": "Unauthorized"}) is False
    assert maybe(400, {"message": "Invalid phone number"}) is False
    assert maybe(429, None) is False
    assert maybe(503, None) is False
    assert maybe(502, None) is True
    assert maybe(202, None) is True  # taken? it did not say: ask the phone
