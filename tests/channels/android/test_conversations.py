"""The same conversations over the Android gateway: replies leave through the pool's phones."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.models import Contact, Message, SurveyResponse
from bot.runtime import Runtime
from testkit.fake_android import FakeAndroidPhone
from testkit.fake_rasa import FakeRasa
from testkit.fake_twilio import FakeTwilio
from tests.support.android import AndroidPerson
from tests.support.phone import Phone


def test_help_stop_and_start_over_the_pool(
    person: AndroidPerson, phones: list[FakeAndroidPhone], twilio: FakeTwilio, runtime: Runtime
) -> None:
    [help_text] = person.send("HELP")
    assert "STOP" in help_text
    [confirmation] = person.send("STOP")
    assert "START" in confirmation or "सुरु" in confirmation
    assert person.send("hello?") == []
    assert person.send("HELP") == []
    [welcome] = person.send("START")
    assert welcome
    assert twilio.calls == []
    with runtime.db.read() as s:
        contact = s.scalars(select(Contact)).one()
        rows = s.scalars(select(Message).order_by(Message.id)).all()
    assert contact.phone == person.number and contact.channel == "sms"
    assert contact.last_provider == "android"
    out = [m for m in rows if m.direction == "out"]
    assert {m.provider for m in out} == {"android"}
    assert all(m.provider_sid and m.provider_sid.startswith("android:cb") for m in out)
    assert all(m.status == "queued" for m in out)  # the phone's "Pending"
    # Three replies, one per phone: the pool takes turns.
    assert sorted(len(p.accepted) for p in phones) == [1, 1, 1]


def test_faq_answer_over_the_pool(android_member: AndroidPerson, rasa: FakeRasa) -> None:
    rasa.answers["what are the steps"] = [("faq_steps", 0.91), ("faq_meaning", 0.05)]
    [answer] = android_member.send("what are the steps")
    assert answer.startswith("Steps: 1 assess needs")
    [more] = android_member.send("MORE")
    assert more.startswith("4 make materials")


def test_nepali_text_round_trips(android_member: AndroidPerson, rasa: FakeRasa) -> None:
    question = "सामाजिक परिचालन भनेको के हो"
    rasa.answers[question] = [("faq_meaning", 0.88)]
    [answer] = android_member.send(question)
    assert answer == "सामाजिक परिचालन सामुदायिक विकासको पहिलो चरण हो।"


def test_survey_over_the_pool(person: AndroidPerson, runtime: Runtime) -> None:
    [first] = person.send("sarvekshan")
    assert "सबैभन्दा ठूलो समस्या" in first
    assert "३ वटासम्म" in person.send("pani")[0]
    person.send("1 2")
    person.send("sabai")
    assert "कतिवटा" in person.send("cha")[0]
    person.send("3")
    person.send("hoina")
    person.send("whatsapp")
    [end] = person.send("2")
    assert end.startswith("धन्यवाद!")
    with runtime.db.read() as s:
        row = s.scalars(select(SurveyResponse)).one()
    assert (row.status, row.channel) == ("completed", "sms")
    assert row.answers["priorities"] == ["water", "sanitation"]


def test_a_twilio_contact_is_still_answered_through_twilio(
    phone: Phone, person: AndroidPerson, phones: list[FakeAndroidPhone]
) -> None:
    assert phone.send("HELP")  # over Twilio
    assert all(p.accepted == [] for p in phones)
    assert person.send("HELP")
    assert phone.send("HELP")
    assert sum(len(p.accepted) for p in phones) == 1
