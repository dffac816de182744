"""Transcripts: what a person sends and what they get back, through the whole pipeline."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.db.models import ConsentEvent, Contact, Message
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.support.phone import Phone


@pytest.mark.parametrize("stop_word", ["STOP", "unsubscribe", "बन्द", "रोक", "band", "Band garnus"])
def test_stop_in_each_language_then_silence_until_start(
    stop_word: str, phone: Phone, runtime: Runtime
) -> None:
    assert phone.send("hello")  # in the middle of a conversation
    assert phone.send("LANG")
    [confirmation] = phone.send(stop_word)
    assert "सुरु" in confirmation or "START" in confirmation
    assert phone.send("hello?") == []
    assert phone.send("HELP") == []
    assert phone.send("भाषा") == []
    [welcome] = phone.send("START")
    assert welcome
    assert phone.send("help")
    with runtime.db.read() as s:
        log = s.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        contact = s.scalars(select(Contact)).one()
    assert [(e.opted_out, e.reason) for e in log] == [(True, "keyword"), (False, "keyword")]
    assert all(e.message_id is not None for e in log)
    assert not contact.opted_out


def test_stop_confirmation_is_in_the_language_of_the_stop(phone: Phone) -> None:
    [confirmation] = phone.send("बन्द")
    assert "सुरु" in confirmation


def test_lang_switches_replies_to_nepali_and_back(phone: Phone) -> None:
    [english] = phone.send("help")
    assert "HELP" in english
    [switched] = phone.send("LANG")
    assert "नेपाली" in switched
    [nepali] = phone.send("help")
    assert "मद्दत" in nepali
    [back] = phone.send("lang english")
    assert "English" in back
    assert "HELP" in phone.send("menu")[0]


def test_start_after_stop_on_whatsapp(client, twilio: FakeTwilio) -> None:  # type: ignore[no-untyped-def]
    wa = Phone(client, twilio, whatsapp=True)
    assert wa.send("stop")
    assert wa.send("anything") == []
    assert wa.send("सुरु")
    assert wa.send("help")


def test_message_from_opted_out_contact_is_still_stored(phone: Phone, runtime: Runtime) -> None:
    phone.send("STOP")
    phone.send("I have a question")
    with runtime.db.read() as s:
        inbound = s.scalars(
            select(Message).where(Message.direction == "in").order_by(Message.id)
        ).all()
    assert [m.status for m in inbound] == ["processed", "processed"]
    assert inbound[-1].intent == "ignored_opted_out"


def test_a_paused_contact_gets_no_automatic_answer_but_stop_still_works(
    phone: Phone, runtime: Runtime
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    assert phone.send("hello")
    with runtime.db.write() as s:
        s.execute(update(Contact).values(paused_until=runtime.clock() + timedelta(hours=1)))
    assert phone.send("what is social mobilization") == []  # a person answers by hand
    [confirmation] = phone.send("STOP")
    assert "START" in confirmation
    with runtime.db.read() as s:
        intents = s.scalars(
            select(Message.intent).where(Message.direction == "in").order_by(Message.id)
        ).all()
    assert intents[1:] == ["handoff", "opt_out"]
