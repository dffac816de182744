"""Sparrow's failures say whether Sparrow may have queued the message (`maybe_sent`): not when
the connection was never opened or Sparrow answered with its error, maybe when the request
went out and no answer came (bot/failover.py moves only the first kind elsewhere).
What the connection alone says, the same for every provider:
tests/channels/test_maybe_sent_transport.py."""

from __future__ import annotations

import pytest

from bot.channels.sparrow.api import classify
from bot.channels.sparrow.sender import SparrowChannel
from bot.core.messages import Channel, Language, Outbound
from bot.failover import maybe_delivered
from bot.settings import Settings
from testkit.fake_sparrow import FakeSparrow
from tests.support.sockets import send_failure
from tests.support.sparrow import sparrow_settings

MESSAGE = Outbound(Channel.SMS, "+9779812345678", "hello", Language.EN, "reply")


def channel_at(url: str) -> SparrowChannel:
    settings = Settings.from_mapping(sparrow_settings(url) | {"SEND_TIMEOUT_SECONDS": "1"})
    return SparrowChannel(settings)


@pytest.fixture(params=["sync", "async"])
def use_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "async")


@pytest.mark.parametrize("status, code", [(503, None), (500, None), (429, None), (403, 1013)])
def test_sparrows_own_error_answers_are_certainly_not_sent(
    sparrow: FakeSparrow, use_async: bool, status: int, code: int | None
) -> None:
    sparrow.fail_next(status, code)
    error = send_failure(channel_at(sparrow.url), MESSAGE, use_async)
    assert error.maybe_sent is False and not maybe_delivered(error)


def test_what_each_answer_says_about_the_message() -> None:
    def maybe(status: int, payload: object) -> bool | None:
        error = classify(status, payload)
        assert error is not None
        return error.maybe_sent

    assert maybe(403, {"response_code": 1002, "response": "Invalid Token"}) is False
    assert maybe(500, {"response_code": 5000, "response": "error"}) is False  # Sparrow's own
    assert maybe(503, None) is False  # by HTTP's definition, not handled
    assert maybe(504, None) is True  # a gateway timed out: Sparrow may have it
    assert maybe(500, "<html>") is True
    assert maybe(200, None) is True  # 200 that says nothing: it may be queued
    assert maybe(404, None) is False
