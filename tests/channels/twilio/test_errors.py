"""Twilio's errors, classified by the sender: transient or permanent by the HTTP status, and
what the error code means for the contact (bot/channels/twilio/errors.py)."""

from __future__ import annotations

import requests
from twilio.base.exceptions import TwilioRestException

from bot.channels.base import ErrorMeaning, PermanentSendError, TransientSendError
from bot.channels.twilio.sender import _classify, _status
from bot.core.status import MessageStatus


def _rest(status: int, code: int) -> TwilioRestException:
    return TwilioRestException(status, "https://api.twilio.com/x", "refused", code)


def test_error_codes_carry_their_meaning() -> None:
    stop = _classify(_rest(400, 21610))
    assert isinstance(stop, PermanentSendError)
    assert (stop.code, stop.meaning, stop.provider) == (21610, ErrorMeaning.OPTED_OUT, "twilio")
    assert _classify(_rest(400, 21211)).meaning is ErrorMeaning.BAD_NUMBER
    assert _classify(_rest(400, 21617)).meaning is ErrorMeaning.FAILED  # not in the table
    busy = _classify(_rest(429, 20429))
    assert isinstance(busy, TransientSendError) and busy.meaning is ErrorMeaning.RETRY
    down = _classify(requests.ConnectionError("refused"))
    assert isinstance(down, TransientSendError) and down.meaning is ErrorMeaning.RETRY


def test_statuses_map_to_ours() -> None:
    assert _status("queued") == MessageStatus.QUEUED
    assert _status(None) == MessageStatus.QUEUED
    assert _status("ACCEPTED") == MessageStatus.ACCEPTED
    assert _status("receiving") == "receiving"
