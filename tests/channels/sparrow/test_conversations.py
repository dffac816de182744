"""The same conversations over Sparrow SMS: replies reach the fake Sparrow API, never Twilio."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.models import Contact, Message, SurveyResponse
from bot.runtime import Runtime
from testkit.fake_rasa import FakeRasa
from testkit.fake_sparrow import FakeSparrow
from testkit.fake_twilio import FakeTwilio
from tests.support.phone import Phone
from tests.support.sparrow import SPARROW_FROM, SPARROW_TOKEN, SparrowPhone


def test_help_stop_and_start_over_sparrow(
    sparrow_phone: SparrowPhone, sparrow: FakeSparrow, twilio: FakeTwilio, runtime: Runtime
) -> None:
    [help_text] = sparrow_phone.send("HELP")
    assert "STOP" in help_text
    [confirmation] = sparrow_phone.send("STOP")
    assert "START" in confirmation or "सुरु" in confirmation
    assert sparrow_phone.send("hello?") == []
    assert sparrow_phone.send("HELP") == []
    [welcome] = sparrow_phone.send("START")
    assert welcome
    assert twilio.calls == []
    call = sparrow.sent[0]
    assert (call.form["token"], call.form["from"], call.form["to"]) == (
        SPARROW_TOKEN,
        SPARROW_FROM,
        sparrow_phone.national,
    )
    with runtime.db.read() as s:
        contact = s.scalars(select(Contact)).one()
        rows = s.scalars(select(Message).order_by(Message.id)).all()
    assert contact.phone == sparrow_phone.number and contact.channel == "sms"
    assert contact.last_provider == "sparrow"
    assert {(m.direction, m.provider) for m in rows} == {("in", "sparrow"), ("out", "sparrow")}
    assert all(m.status == "sent" for m in rows if m.direction == "out")


def test_faq_answer_over_sparrow(sparrow_member: SparrowPhone, rasa: FakeRasa) -> None:
    rasa.answers["what are the steps"] = [("faq_steps", 0.91), ("faq_meaning", 0.05)]
    [answer] = sparrow_member.send("what are the steps")
    assert answer.startswith("Steps: 1 assess needs")
    [more] = sparrow_member.send("MORE")
    assert more.startswith("4 make materials")


def test_nepali_text_round_trips(sparrow_member: SparrowPhone, rasa: FakeRasa) -> None:
    question = "सामाजिक परिचालन भनेको के हो"
    rasa.answers[question] = [("faq_meaning", 0.88)]
    [answer] = sparrow_member.send(question)
    assert answer == "सामाजिक परिचालन सामुदायिक विकासको पहिलो चरण हो।"


def test_survey_over_sparrow(sparrow_phone: SparrowPhone, runtime: Runtime) -> None:
    [first] = sparrow_phone.send("sarvekshan")
    assert "सबैभन्दा ठूलो समस्या" in first
    assert "३ वटासम्म" in sparrow_phone.send("pani")[0]
    sparrow_phone.send("1 2")
    sparrow_phone.send("sabai")
    assert "कतिवटा" in sparrow_phone.send("cha")[0]
    sparrow_phone.send("3")
    sparrow_phone.send("hoina")
    sparrow_phone.send("whatsapp")
    [end] = sparrow_phone.send("2")
    assert end.startswith("धन्यवाद!")
    with runtime.db.read() as s:
        row = s.scalars(select(SurveyResponse)).one()
        inbound = s.scalars(select(Message).where(Message.direction == "in")).all()
    assert (row.status, row.channel) == ("completed", "sms")
    assert row.answers["priorities"] == ["water", "sanitation"]
    assert inbound[0].body == "sarvekshan"


def test_a_twilio_contact_is_still_answered_through_twilio(
    phone: Phone, sparrow_phone: SparrowPhone, sparrow: FakeSparrow, runtime: Runtime
) -> None:
    assert phone.send("HELP")  # over Twilio
    assert sparrow.calls == []
    assert sparrow_phone.send("HELP")
    assert phone.send("HELP")
    assert len(sparrow.sent) == 1
    with runtime.db.read() as s:
        twilio_rows = s.scalars(
            select(Message).join(Contact).where(Contact.phone == phone.number)
        ).all()
    assert {m.provider for m in twilio_rows} == {None}
