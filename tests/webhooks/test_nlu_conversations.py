"""FAQ conversations through the whole pipeline, with a fake Rasa server at the edge."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bot.db.models import Message, UnansweredQuestion
from bot.runtime import Runtime
from testkit.fake_rasa import FakeRasa
from tests.support.clock import FakeClock
from tests.support.phone import Phone


def unanswered(runtime: Runtime) -> list[tuple[str, object]]:
    with runtime.db.read() as s:
        rows = s.scalars(select(UnansweredQuestion).order_by(UnansweredQuestion.id)).all()
        return [(r.reason, r.candidates) for r in rows]


def test_confident_faq_is_answered_with_more(
    member: Phone, rasa: FakeRasa, nlu_runtime: Runtime
) -> None:
    rasa.answers["what are the steps"] = [("faq_steps", 0.91), ("faq_meaning", 0.05)]
    [answer] = member.send("what are the steps")
    assert answer.startswith("Steps: 1 assess needs")
    [more] = member.send("MORE")
    assert more.startswith("4 make materials")
    assert "whole answer" in member.send("more")[0]
    with nlu_runtime.db.read() as s:
        first = s.scalars(
            select(Message).where(Message.direction == "in").order_by(Message.id)
        ).first()
    assert first is not None and (first.intent, first.confidence) == (
        "faq_steps",
        pytest.approx(0.91),
    )
    assert unanswered(nlu_runtime) == []


def test_answer_in_nepali_for_devanagari(member: Phone, rasa: FakeRasa) -> None:
    rasa.answers["सामाजिक परिचालन भनेको के हो"] = [("faq_meaning", 0.88)]
    [answer] = member.send("सामाजिक परिचालन भनेको के हो")
    assert answer == "सामाजिक परिचालन सामुदायिक विकासको पहिलो चरण हो।"


def test_more_continues_in_the_answers_language(member: Phone, rasa: FakeRasa) -> None:
    rasa.answers["samajik parichalan ka charan"] = [("faq_steps", 0.9)]
    [answer] = member.send("samajik parichalan ka charan")
    assert answer.startswith("चरण:")
    [more] = member.send("MORE")
    assert more.startswith("४ सामग्री")


def test_unsure_model_offers_choices_and_a_number_picks_one(
    member: Phone, rasa: FakeRasa, nlu_runtime: Runtime
) -> None:
    rasa.answers["mobilization?"] = [("faq_meaning", 0.41), ("faq_steps", 0.35), ("greet", 0.1)]
    [offer] = member.send("mobilization?")
    assert offer.splitlines()[0] == "Did you mean:"
    assert "1) What is social mobilization?" in offer
    assert "2) What are the steps in social mobilization?" in offer
    [answer] = member.send("2")
    assert answer.startswith("Steps:")
    assert unanswered(nlu_runtime) == [
        ("low_confidence", [["faq_meaning", 0.41], ["faq_steps", 0.35], ["greet", 0.1]])
    ]


def test_close_top_two_is_not_guessed(member: Phone, rasa: FakeRasa) -> None:
    rasa.answers["term"] = [("faq_nepali_term", 0.60), ("faq_meaning", 0.52)]
    [offer] = member.send("term")
    assert offer.startswith("Did you mean:")


def test_out_of_scope_is_polite_and_recorded(
    member: Phone, rasa: FakeRasa, nlu_runtime: Runtime
) -> None:
    rasa.answers["cricket score"] = [("out_of_scope", 0.93), ("faq_meaning", 0.03)]
    [reply] = member.send("cricket score")
    assert "social mobilization" in reply
    assert unanswered(nlu_runtime)[0][0] == "out_of_scope"


def test_greeting_and_thanks(member: Phone, rasa: FakeRasa) -> None:
    rasa.answers["hello there"] = [("greet", 0.95)]
    rasa.answers["thank you so much"] = [("thanks", 0.9)]
    assert member.send("hello there")[0].startswith("Namaste!")
    assert "welcome" in member.send("thank you so much")[0]


def test_rasa_down_keeps_keywords_working_and_recovers(
    member: Phone, rasa: FakeRasa, nlu_runtime: Runtime, clock: FakeClock
) -> None:
    rasa.status = 503
    [reply] = member.send("what are the steps")
    assert "answer you soon" in reply
    assert "HELP" in member.send("HELP")[0]  # keywords never need Rasa
    rasa.status = 200
    rasa.answers["what are the steps"] = [("faq_steps", 0.91)]
    assert nlu_runtime.nlu is not None
    assert "answer you soon" in member.send("what are the steps")[0]  # still cooling down
    nlu_runtime.nlu.clock = lambda: time.monotonic() + 60  # the cool-down has passed
    assert member.send("what are the steps")[0].startswith("Steps:")
    assert [r[0] for r in unanswered(nlu_runtime)] == ["nlu_unavailable", "nlu_unavailable"]
