"""Rasa down: clear FAQ questions are answered from the catalogue, unclear ones wait."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.content import Content
from bot.core.fallback import FaqMatcher
from bot.core.handler import Bot
from bot.core.understanding import NluUnavailable, Understanding
from nlu.catalogue import Catalogue
from tests.support.builders import make_contact, make_inbound


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.fixture(scope="module")
def matcher(catalogue: Catalogue) -> FaqMatcher:
    return FaqMatcher(catalogue.topics.values())


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("what are the steps in social mobilisation?", "steps"),
        ("qualities of a gud mobilizer pls", "qualities"),
        ("सामाजिक परिचालनका फाइदा के के हुन्", "benefits"),
        ("samajik parichalan kina mahatvapurna xa", "importance"),
    ],
)
def test_clear_questions_are_matched(matcher: FaqMatcher, text: str, topic: str) -> None:
    assert matcher.answer(text) == topic


@pytest.mark.parametrize(
    "text",
    [
        "what are the steps",  # names no subject: the model decides, not the fallback
        "what are the steps to get a passport",
        "salary of a social mobilizer",
        "mobilizer",  # the subject alone is not a question
        "",
    ],
)
def test_unclear_or_other_messages_are_not_answered(matcher: FaqMatcher, text: str) -> None:
    assert matcher.answer(text) is None


def test_a_match_needs_a_margin_over_the_next_topic(catalogue: Catalogue) -> None:
    strict = FaqMatcher(catalogue.topics.values(), threshold=0.0, margin=1.0)
    assert strict.answer("what are the steps in social mobilization") is None
    found = strict.match("what are the steps in social mobilization")
    assert found.topic == "steps" and found.score > found.runner_up


def down(text: str) -> Understanding:
    raise NluUnavailable("no Rasa server answered")


def test_the_bot_answers_clear_questions_while_rasa_is_down(catalogue: Catalogue) -> None:
    bot = Bot(Content.load(), faq=catalogue.topics, understand=down)
    clear = bot.handle(make_inbound("what are the steps in social mobilization"), make_contact())
    assert [o.kind for o in clear.outbounds] == ["faq_steps"]
    assert clear.unanswered is None
    unclear = bot.handle(make_inbound("benefits of yoga"), make_contact())
    assert [o.kind for o in unclear.outbounds] == ["nlu_unavailable"]
    assert unclear.unanswered is not None and unclear.unanswered.reason == "nlu_unavailable"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_matched_without_crashing(text: str) -> None:
    topic = _MATCHER.answer(text)
    assert topic is None or topic in _TOPICS


_TOPICS = Catalogue.load().topics
_MATCHER = FaqMatcher(_TOPICS.values())
