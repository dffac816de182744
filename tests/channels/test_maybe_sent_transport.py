"""What the connection alone says about a send, the same for every HTTP provider: certainly
not sent when no connection was opened, maybe sent once the request went out and no answer
came or something in between answered a bare 5xx (bot/channels/transport.py). Each
provider's own error answers are its own tests (tests/channels/<provider>/test_maybe_sent.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.channels.base import ChannelAdapter
from bot.channels.sparrow.sender import SparrowChannel
from bot.core.messages import Channel, Language, Outbound
from bot.failover import maybe_delivered
from bot.settings import Settings
from tests.support.builders import TWILIO_ASYNC_WARNINGS, twilio_sms_at
from tests.support.sockets import Backlogged, Endpoint, refused_url, send_failure
from tests.support.sparrow import sparrow_settings

MESSAGE = Outbound(Channel.SMS, "+9779812345678", "hello", Language.EN, "reply")
pytestmark = TWILIO_ASYNC_WARNINGS


twilio_at = twilio_sms_at


def sparrow_at(url: str) -> ChannelAdapter:
    return SparrowChannel(
        Settings.from_mapping(sparrow_settings(url) | {"SEND_TIMEOUT_SECONDS": "1"})
    )


@pytest.fixture(params=[twilio_at, sparrow_at], ids=["twilio", "sparrow"])
def channel_at(request: pytest.FixtureRequest) -> Callable[[str], ChannelAdapter]:
    factory: Callable[[str], ChannelAdapter] = request.param
    return factory


@pytest.fixture(params=["sync", "async"])
def use_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "async")


def test_a_refused_connection_is_certainly_not_sent(
    channel_at: Callable[[str], ChannelAdapter], use_async: bool
) -> None:
    error = send_failure(channel_at(refused_url()), MESSAGE, use_async)
    assert error.maybe_sent is False and not maybe_delivered(error)


def test_a_connect_timeout_is_certainly_not_sent(
    channel_at: Callable[[str], ChannelAdapter], use_async: bool
) -> None:
    backlogged = Backlogged()
    try:
        error = send_failure(channel_at(backlogged.url), MESSAGE, use_async)
    finally:
        backlogged.close()
    assert error.maybe_sent is False


@pytest.mark.parametrize("mode", ["silent", "hang_up"])
def test_a_request_sent_without_an_answer_may_have_been_taken(
    channel_at: Callable[[str], ChannelAdapter], mode: str, use_async: bool
) -> None:
    endpoint = Endpoint(mode)
    try:
        error = send_failure(channel_at(endpoint.url), MESSAGE, use_async)
        assert [method for method, _ in endpoint.requests] == ["POST"]  # written in full
    finally:
        endpoint.close()
    assert error.maybe_sent is True and maybe_delivered(error)


def test_a_bare_5xx_from_in_between_may_have_been_taken(
    channel_at: Callable[[str], ChannelAdapter], use_async: bool
) -> None:
    endpoint = Endpoint("answer", lambda method, path: (502, b"<html>Bad Gateway</html>"))
    try:
        error = send_failure(channel_at(endpoint.url), MESSAGE, use_async)
    finally:
        endpoint.close()
    assert error.maybe_sent is True
