"""Builders for test inputs: Twilio webhook forms, signatures, core messages."""

from __future__ import annotations

import itertools
import uuid

from twilio.request_validator import RequestValidator

from bot.core.messages import Channel, ContactState, Inbound, Language

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "test-auth-token-1234567890"
SMS_FROM = "+15005550006"
WHATSAPP_FROM = "whatsapp:+15005550007"
BASE_URL = "https://bot.example.org"  # the PUBLIC_URL tests deploy with

_phones = itertools.count(9800000001)


def new_phone() -> str:
    """A distinct Nepali mobile number in E.164."""
    return f"+977{next(_phones)}"


def twilio_form(body: str = "hi", sender: str | None = None, **extra: str) -> dict[str, str]:
    """The form Twilio posts for an inbound SMS (or WhatsApp with sender='whatsapp:+…')."""
    form = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "From": sender or new_phone(),
        "To": SMS_FROM,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and form."""
    return RequestValidator(token).compute_signature(url, form)


def make_inbound(
    body: str, channel: Channel = Channel.SMS, sender: str = "+9779800000001"
) -> Inbound:
    """An inbound message as the core sees it."""
    return Inbound(channel=channel, sender=sender, body=body)


def make_contact(
    language: Language | None = None, opted_out: bool = False, channel: Channel = Channel.SMS
) -> ContactState:
    """A contact state for core tests."""
    return ContactState(
        phone="+9779800000001", channel=channel, language=language, opted_out=opted_out
    )
