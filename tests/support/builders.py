"""Builders for test inputs: Twilio webhook forms, signatures, core messages."""

from __future__ import annotations

import itertools
import uuid

import pytest
from twilio.request_validator import RequestValidator

from bot.channels.twilio.sender import TwilioChannel, twilio_channels
from bot.core.messages import Channel, ContactState, Inbound, Language
from bot.settings import Settings

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


def add_contact(  # type: ignore[no-untyped-def]
    db,
    phone: str | None = None,
    *,
    channel: str = "sms",
    language: str | None = None,
    groups: tuple[str, ...] = (),
    has_sms: bool | None = None,
    has_whatsapp: bool | None = None,
    opted_out: bool = False,
    last_inbound_at=None,
    district: str | None = None,
    ward: str | None = None,
) -> int:
    """Stores a contact (as an import would) and returns its id."""
    from bot.db.models import Contact, ContactGroup, utcnow

    now = utcnow()
    with db.write() as session:
        contact = Contact(
            phone=phone or new_phone(),
            simulated=False,
            channel=channel,
            has_sms=channel == "sms" if has_sms is None else has_sms,
            has_whatsapp=channel == "whatsapp" if has_whatsapp is None else has_whatsapp,
            language=language,
            opted_out=opted_out,
            last_inbound_at=last_inbound_at,
            district=district,
            ward=ward,
            version=0,
            created_at=now,
            updated_at=now,
        )
        session.add(contact)
        session.flush()
        for group in groups:
            session.add(ContactGroup(contact_id=contact.id, group_name=group))
        return contact.id


# The twilio library's async client still passes aiohttp a BasicAuth (its deprecation).
TWILIO_ASYNC_WARNINGS = [
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]


def twilio_sms_at(url: str) -> TwilioChannel:
    """Twilio's SMS adapter sending to the API at `url`, giving up after a second."""
    settings = Settings.from_mapping(
        {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_SMS_FROM": SMS_FROM,
            "TWILIO_API_BASE": url,
            "SEND_TIMEOUT_SECONDS": "1",
        }
    )
    return twilio_channels(settings)[Channel.SMS]
