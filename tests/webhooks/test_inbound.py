"""Inbound webhooks end to end: signed form in, stored once, reply at the fake Twilio API."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.db.models import Contact, Message
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import AUTH_TOKEN, SMS_FROM, WHATSAPP_FROM, sign, twilio_form
from tests.support.phone import MESSAGES_PATH, Phone, post_signed

URL = "https://bot.example.org" + MESSAGES_PATH


def count(runtime: Runtime, *where) -> int:  # type: ignore[no-untyped-def]
    with runtime.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Message).where(*where)) or 0)


def test_signed_message_is_stored_and_answered(
    client, runtime: Runtime, twilio: FakeTwilio
) -> None:
    form = twilio_form("hello", "+9779812345678")
    response = post_signed(client, MESSAGES_PATH, form)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert b"<Response/>" in response.data
    [sent] = twilio.sent
    assert sent.form["To"] == "+9779812345678"
    assert sent.form["From"] == SMS_FROM
    assert sent.form["StatusCallback"] == "https://bot.example.org/webhooks/twilio/status"
    assert "HELP" in sent.form["Body"]
    with runtime.db.read() as s:
        inbound = s.scalars(select(Message).where(Message.direction == "in")).one()
        outbound = s.scalars(select(Message).where(Message.direction == "out")).one()
    assert inbound.provider_sid == form["MessageSid"]
    assert inbound.status == "processed"
    assert outbound.provider_sid == sent.sid
    assert outbound.status == "queued"
    assert outbound.in_reply_to_id == inbound.id


def test_forged_signature_is_refused_and_nothing_stored(
    client, runtime: Runtime, twilio: FakeTwilio
) -> None:
    form = twilio_form("STOP")
    forged = sign(URL, form, token="not-the-token")
    assert (
        client.post(MESSAGES_PATH, data=form, headers={"X-Twilio-Signature": forged}).status_code
        == 403
    )
    assert client.post(MESSAGES_PATH, data=form).status_code == 403
    tampered = dict(form, Body="START")
    response = client.post(
        MESSAGES_PATH, data=tampered, headers={"X-Twilio-Signature": sign(URL, form)}
    )
    assert response.status_code == 403
    assert count(runtime) == 0
    assert twilio.calls == []


def test_signature_must_match_the_public_url(client, runtime: Runtime) -> None:
    form = twilio_form("hi")
    internal = sign("http://localhost" + MESSAGES_PATH, form)
    response = client.post(MESSAGES_PATH, data=form, headers={"X-Twilio-Signature": internal})
    assert response.status_code == 403


def test_without_auth_token_webhooks_refuse_everything(env, database_url) -> None:  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.queue import make_huey
    from bot.settings import Settings

    bare = {k: v for k, v in env.items() if not k.startswith("TWILIO_")}
    settings = Settings.from_mapping(bare)
    rt = Runtime(settings, huey=make_huey(settings, immediate=True))
    client = create_app(settings, rt).test_client()
    form = twilio_form("hi")
    response = client.post(
        MESSAGES_PATH, data=form, headers={"X-Twilio-Signature": sign(URL, form, AUTH_TOKEN)}
    )
    assert response.status_code == 403
    assert count(rt) == 0
    rt.close()


def test_duplicate_message_sid_is_acknowledged_and_processed_once(
    client, runtime: Runtime, twilio: FakeTwilio
) -> None:
    form = twilio_form("help")
    for _ in range(3):
        assert post_signed(client, MESSAGES_PATH, form).status_code == 200
    assert count(runtime, Message.direction == "in") == 1
    assert len(twilio.sent) == 1


def test_whatsapp_sender_format(client, runtime: Runtime, twilio: FakeTwilio) -> None:
    phone = Phone(client, twilio, "+9779841000000", whatsapp=True)
    [reply] = phone.send("HELP", ProfileName="Sita", WaId="9779841000000")
    [sent] = twilio.sent
    assert sent.form["To"] == "whatsapp:+9779841000000"
    assert sent.form["From"] == WHATSAPP_FROM
    assert "HELP" in reply
    with runtime.db.read() as s:
        contact = s.scalars(select(Contact)).one()
    assert (contact.phone, contact.channel, contact.has_whatsapp, contact.profile_name) == (
        "+9779841000000",
        "whatsapp",
        True,
        "Sita",
    )


def test_sms_and_whatsapp_from_one_number_are_one_contact(
    client, runtime: Runtime, twilio: FakeTwilio
) -> None:
    Phone(client, twilio, "+9779841000001").send("hi")
    Phone(client, twilio, "+9779841000001", whatsapp=True).send("hi")
    with runtime.db.read() as s:
        contact = s.scalars(select(Contact)).one()
    assert contact.has_sms and contact.has_whatsapp


def test_local_number_is_normalized_to_e164(client, runtime: Runtime, twilio: FakeTwilio) -> None:
    assert post_signed(client, MESSAGES_PATH, twilio_form("hi", "9812345678")).status_code == 200
    with runtime.db.read() as s:
        assert s.scalars(select(Contact.phone)).one() == "+9779812345678"


def test_media_only_message_gets_a_reply(phone: Phone) -> None:
    [reply] = phone.send(
        "",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/media/ME1",
        MediaContentType0="image/jpeg",
    )
    assert "text" in reply


def test_empty_long_emoji_and_devanagari_bodies(phone: Phone, runtime: Runtime) -> None:
    assert len(phone.send("")) == 1
    assert len(phone.send("a" * 1600)) == 1
    assert len(phone.send("🙏🙏🙏")) == 1
    [nepali] = phone.send("नमस्ते, यो के हो?")
    assert "मद्दत" in nepali
    with runtime.db.read() as s:
        bodies = s.scalars(select(Message.body).where(Message.direction == "in")).all()
    assert "a" * 1600 in bodies and "नमस्ते, यो के हो?" in bodies


def test_malformed_requests_are_4xx(client, runtime: Runtime) -> None:
    cases = [
        {k: v for k, v in twilio_form("hi").items() if k != "From"},
        {k: v for k, v in twilio_form("hi").items() if k != "MessageSid"},
        twilio_form("hi", "not a number"),
        twilio_form("hi", NumMedia="lots"),
        twilio_form("hi", NumMedia="-3"),
        twilio_form("x" * 5000),
        twilio_form("hi", "whatsapp:"),
    ]
    for form in cases:
        assert post_signed(client, MESSAGES_PATH, form).status_code == 400, form
    assert count(runtime) == 0


def test_unknown_fields_are_ignored_and_nul_bytes_dropped(client, runtime: Runtime) -> None:
    form = twilio_form("he\x00llo", SomethingNew="x", ChannelMetadata="{}")
    assert post_signed(client, MESSAGES_PATH, form).status_code == 200
    with runtime.db.read() as s:
        assert s.scalars(select(Message.body).where(Message.direction == "in")).one() == "hello"


def test_oversized_request_is_413(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post(MESSAGES_PATH, data={"Body": "x" * 400_000})
    assert response.status_code == 413


def test_get_is_not_allowed(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get(MESSAGES_PATH).status_code == 405


@pytest.mark.parametrize(
    "settings_overrides",
    [{"INBOUND_SPOOL": "true"}, {"INBOUND_SPOOL": "false"}],
    ids=["spool", "no-spool"],
)
def test_deferred_enqueue_answers_without_waiting_for_the_queue(
    settings,
    clock,
    twilio: FakeTwilio,  # type: ignore[no-untyped-def]
) -> None:
    """The web, on SQLite and PostgreSQL, with the spool (acknowledged once the message is in
    the spool file, stored by the mover) and without (acknowledged once stored)."""
    from bot.app import create_app
    from bot.queue import make_huey
    from tests.support.phone import Phone

    runtime = Runtime(
        settings, huey=make_huey(settings, immediate=True), clock=clock, deferred_enqueue=True
    )
    try:
        phone = Phone(create_app(settings, runtime).test_client(), twilio)
        phone.send("HELP")  # acknowledged once stored; the queue is told in the background
        assert len(twilio.wait_for(1, timeout=10)) == 1
        phone.send("LANG")
        phone.send("HELP")
        sent = twilio.wait_for(3, timeout=10)
        assert len(sent) == 3
        # In order: LANG switched to Nepali before the second HELP was answered.
        assert not _devanagari(sent[0].form["Body"]) and _devanagari(sent[2].form["Body"])
        spool_file = settings.var_dir / "spool" / "inbox.jsonl"
        assert spool_file.exists() == settings.inbound_spool
    finally:
        runtime.close()


def _devanagari(text: str) -> bool:
    return any("\u0900" <= c <= "\u097f" for c in text)


@pytest.mark.parametrize("settings_overrides", [{"INBOUND_SPOOL": "true"}], ids=["spool"])
def test_a_webhook_after_close_is_refused_and_closing_again_is_harmless(
    settings,
    clock,
    twilio: FakeTwilio,  # type: ignore[no-untyped-def]
) -> None:
    """gunicorn's exit handler closes the runtime once more after an explicit close; a
    webhook still arriving then gets a 503 (the provider retries), nothing half-written."""
    from bot.app import create_app
    from bot.queue import make_huey

    runtime = Runtime(
        settings, huey=make_huey(settings, immediate=True), clock=clock, deferred_enqueue=True
    )
    client = create_app(settings, runtime).test_client()
    Phone(client, twilio).send("HELP")
    assert len(twilio.wait_for(1, timeout=10)) == 1
    runtime.close()
    runtime.close()
    spool_file = settings.var_dir / "spool" / "inbox.jsonl"
    before = spool_file.read_bytes()
    assert post_signed(client, MESSAGES_PATH, twilio_form("HELP")).status_code == 503
    assert spool_file.read_bytes() == before
