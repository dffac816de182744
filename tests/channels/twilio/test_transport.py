"""The worker's async sends post what the library's blocking client posts, byte for byte in
meaning: the async transport encodes the form itself (bot/channels/twilio/sender.py)."""

from __future__ import annotations

import asyncio

import requests

from bot.channels.base import SendResult
from bot.channels.twilio.sender import _form
from bot.core.messages import Channel, Language, Outbound
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import TWILIO_ASYNC_WARNINGS, twilio_sms_at

pytestmark = TWILIO_ASYNC_WARNINGS


def test_the_form_is_encoded_as_requests_encodes_it() -> None:
    data = {
        "To": "+9779812345678",
        "Body": "नमस्ते & = ? + 100%",
        "MediaUrl": ["https://example.org/a?b=1&c=2", "https://example.org/d"],
        "StatusCallback": None,
        "Attempt": 3,
        "SendAsMms": "true",
    }
    prepared = requests.Request("POST", "http://127.0.0.1/", data=data).prepare()
    assert isinstance(prepared.body, str)
    assert _form(data) == prepared.body.encode()


def test_async_and_blocking_sends_post_the_same_form() -> None:
    fake = FakeTwilio().start()
    message = Outbound(Channel.SMS, "+9779812345678", "कति बजे? A&B=1+1 ✓", Language.NE, "reply")
    try:
        adapter = twilio_sms_at(fake.url)
        blocking = adapter.send(message)

        async def send_and_close() -> SendResult:
            try:
                return await adapter.send_async(message)
            finally:
                await adapter.aclose()

        not_blocking = asyncio.run(send_and_close())
        first, second = fake.wait_for(2)
    finally:
        fake.stop()
    assert first.form == second.form
    assert second.form["Body"] == message.body and second.form["To"] == message.to
    assert first.auth == second.auth and second.auth is not None
    assert blocking.status == not_blocking.status and not_blocking.provider_id.startswith("SM")
