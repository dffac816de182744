"""Sending through Sparrow: error codes retried or failed as documented, credits, routing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.broadcasts.service import Draft, confirm, create
from bot.channels.base import PermanentSendError, TransientSendError
from bot.channels.sparrow.api import classify, national_number
from bot.channels.sparrow.sender import SparrowChannel
from bot.core.messages import Channel, Language, Outbound
from bot.db.models import Contact, Message
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError
from testkit.fake_sparrow import FakeSparrow
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import new_phone
from tests.support.clock import FakeClock
from tests.support.phone import Phone
from tests.support.sparrow import SparrowPhone


def outbound(runtime: Runtime) -> Message:
    with runtime.db.read() as s:
        return s.scalars(select(Message).where(Message.direction == "out")).one()


@pytest.mark.parametrize("status, code", [(500, None), (503, None), (429, None), (403, 1013)])
def test_transient_errors_are_retried(
    sparrow_phone: SparrowPhone,
    sparrow: FakeSparrow,
    runtime: Runtime,
    clock: FakeClock,
    status: int,
    code: int | None,
) -> None:
    sparrow.fail_next(status, code)
    assert sparrow_phone.send("HELP") == []
    first = outbound(runtime)
    assert (first.status, first.attempts, first.provider) == ("pending", 1, "sparrow")
    clock.advance(60)
    runtime.sweep()
    assert sparrow_phone.replies()
    done = outbound(runtime)
    assert (done.status, done.attempts) == ("sent", 2)
    assert done.provider_sid and done.provider_sid.startswith("sparrow-")


@pytest.mark.parametrize("code", [1007, 1011, 1008, 1000])
def test_permanent_errors_fail_at_once(
    sparrow_phone: SparrowPhone, sparrow: FakeSparrow, runtime: Runtime, clock: FakeClock, code: int
) -> None:
    sparrow.fail_next(403, code)
    sparrow_phone.send("HELP")
    clock.advance(1000)
    runtime.sweep()
    message = outbound(runtime)
    assert (message.status, message.error_code) == ("failed", code)
    assert len(sparrow.calls) == 1


def test_error_meanings() -> None:
    assert isinstance(classify(403, {"response_code": 1012}), TransientSendError)
    assert isinstance(classify(403, {"response_code": "1007"}), PermanentSendError)
    assert isinstance(classify(502, "<html>"), TransientSendError)
    assert isinstance(classify(404, None), PermanentSendError)
    assert classify(200, {"count": 1, "response_code": 200, "response": "queued"}) is None
    assert national_number("+9779812345678") == "9812345678"
    with pytest.raises(PermanentSendError):
        national_number("+14155552671")


def test_credits(settings: Settings, sparrow: FakeSparrow, sparrow_phone: SparrowPhone) -> None:
    channel = SparrowChannel(settings)
    before = channel.credits()
    assert sparrow_phone.send("HELP")
    after = channel.credits()
    assert (after.available, after.consumed) == (before.available - 1, before.consumed + 1)
    sparrow.token = "rotated"
    with pytest.raises(TransientSendError):  # 1002: the account, not the message
        channel.credits()


def test_a_survey_invitation_goes_out_the_way_the_contact_last_wrote(
    sparrow_phone: SparrowPhone, runtime: Runtime
) -> None:
    sparrow_phone.send("HELP")
    with runtime.db.begin() as conn:
        contact_id = conn.execute(select(Message.contact_id)).scalars().first()
    assert contact_id is not None
    assert runtime.invite(contact_id) == "started"
    assert any(
        "सबैभन्दा ठूलो समस्या" in text or "problem" in text.lower() for text in sparrow_phone.replies()
    )


def test_a_reply_by_hand_goes_out_the_way_the_contact_last_wrote(
    sparrow_phone: SparrowPhone, runtime: Runtime, twilio: FakeTwilio
) -> None:
    assert sparrow_phone.send("HELP")
    with runtime.db.write() as session:
        contact = session.scalars(select(Contact)).one()
        message_id = runtime.outbox.enqueue(
            session,
            contact.id,
            Outbound(Channel.SMS, contact.phone, "नमस्ते, म सहजकर्ता हुँ।", Language.NE, "manual_reply"),
        )
    runtime.retry_task(message_id)
    assert sparrow_phone.replies() == ["नमस्ते, म सहजकर्ता हुँ।"]
    assert twilio.calls == []


def test_a_broadcast_reaches_each_sms_contact_by_their_last_provider(
    env: dict[str, str],
    settings_overrides: dict[str, str],
    clock: FakeClock,
    sparrow: FakeSparrow,
    twilio: FakeTwilio,
) -> None:
    settings = Settings.from_mapping(
        env | settings_overrides | {"BROADCAST_PACE": "sms=0,whatsapp=0"}
    )
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    try:
        client = create_app(settings, runtime).test_client()
        nepal = SparrowPhone(client, sparrow, new_phone())
        abroad = Phone(client, twilio)
        assert nepal.send("HELP") and abroad.send("HELP")
        text = "आइतबार बिहान १० बजे विद्यालयमा खोप शिविर।"
        draft = Draft(title="Camp", body_en=text, body_ne=text)
        broadcast_id = create(runtime.broadcasts, draft, created_by="coordinator@example.org")
        assert confirm(runtime.broadcasts, broadcast_id) == "sending"
        assert nepal.replies() == [text]
        assert abroad.replies() == [text]
    finally:
        runtime.close()


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"SPARROW_TOKEN": "t"}, "SPARROW_FROM"),
        ({"SPARROW_API_BASE": "ftp://x"}, "SPARROW_API_BASE"),
        ({"SPARROW_INBOUND_TOKEN": "short"}, "SPARROW_INBOUND_TOKEN"),
        ({"SPARROW_ALLOWED_IPS": "10.0.0.0/8,nope"}, "SPARROW_ALLOWED_IPS"),
    ],
)
def test_settings_errors_name_the_setting(
    env: dict[str, str], overrides: dict[str, str], name: str
) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping(env | overrides)
