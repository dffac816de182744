"""Twilio's failures say whether Twilio may have created the message (`maybe_sent`): not when
the connection was never opened or Twilio answered with its error, maybe when the request
went out and no answer came, or something in between answered a bare 5xx.
What the connection alone says, the same for every provider:
tests/channels/test_maybe_sent_transport.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from bot.channels.base import ErrorMeaning, PermanentSendError, SendError, TransientSendError
from bot.channels.twilio.sender import _classify
from bot.core.messages import Channel, Language, Outbound
from bot.failover import maybe_delivered
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import TWILIO_ASYNC_WARNINGS, twilio_sms_at
from tests.support.sockets import refused_url, send_failure

MESSAGE = Outbound(Channel.SMS, "+15005550006", "hello", Language.EN, "reply")
pytestmark = TWILIO_ASYNC_WARNINGS


channel_at = twilio_sms_at


@pytest.fixture(params=["sync", "async"])
def use_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "async")


@pytest.mark.parametrize("status, code", [(400, 21211), (429, 20429), (500, 20500), (503, None)])
def test_twilios_own_error_answers_are_certainly_not_sent(
    twilio: FakeTwilio, use_async: bool, status: int, code: int | None
) -> None:
    twilio.fail_next(status, code)
    error = send_failure(channel_at(twilio.url), MESSAGE, use_async)
    assert error.maybe_sent is False and not maybe_delivered(error)


def test_a_lookup_that_fails_leaves_the_message_in_doubt() -> None:
    # Asked whether it has a message (after a worker died mid-send), Twilio cannot be
    # reached: whether it has it is still unknown, whatever the connection did.
    channel = channel_at(refused_url())
    with pytest.raises(SendError) as raised:
        channel.find_sent(MESSAGE, datetime(2026, 1, 1, tzinfo=UTC))
    assert raised.value.maybe_sent is True


def test_what_each_answer_says_about_the_message() -> None:
    def maybe(status: int, code: int) -> bool | None:
        return _classify(
            TwilioRestException(status, "https://api.twilio.com/x", "x", code)
        ).maybe_sent

    assert maybe(400, 21610) is False
    assert maybe(500, 20500) is False  # Twilio's own error body
    assert maybe(500, 500) is True  # the library's stand-in: no Twilio error in the body
    assert maybe(504, 504) is True
    assert maybe(503, 503) is False  # by HTTP's definition, not handled


def test_an_rfc_9457_problem_from_twilio_is_its_own_answer() -> None:
    # Newer Twilio services answer errors as RFC 9457 problems: the library raises another
    # exception, with the same status and code, and it is classified the same way.
    problem = TwilioServiceException(
        "https://www.twilio.com/docs/errors/21211", "Invalid 'To' Phone Number", 400, 21211
    )
    error = _classify(problem)
    assert isinstance(error, PermanentSendError)
    assert (error.code, error.meaning, error.maybe_sent) == (21211, ErrorMeaning.BAD_NUMBER, False)
    busy = _classify(TwilioServiceException("about:blank", "Too Many Requests", 429, 20429))
    assert isinstance(busy, TransientSendError) and busy.maybe_sent is False
