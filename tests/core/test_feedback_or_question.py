"""Issue 13: a question about the mobilizer in one's own village is not feedback.

The model learnt feedback from messages such as "the mobilizer did not come to our village",
so "will a mobilizer come to our village?" looked like feedback to it and started the
feedback flow. The bot now starts feedback only when the message tells (names feedback, or
reports something that did not happen or went wrong); a question is decided on the rest of
the model's ranking. Both directions, in English, Devanagari and romanized Nepali.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.content import Content
from bot.core.conversations import Conversations
from bot.core.faq import Decision, NluPolicy, decide
from bot.core.handler import Bot
from bot.core.messages import Channel, ContactState, Inbound
from bot.core.understanding import Candidate, Understanding
from bot.core.wording import asks_not_tells
from flows.registry import FlowBook
from nlu.catalogue import Catalogue
from tests.support.clock import FakeClock
from tests.support.flows import kit, shipped

QUESTIONS = [
    "will a mobilizer come to our village?",
    "what does the mobilizer in our ward do",
    "who is the mobilizer in our ward",
    "हाम्रो गाउँमा परिचालक आउनुहुन्छ?",
    "हाम्रो वडाको परिचालक को हो",
    "हाम्रो टोलमा परिचालकले के गर्छन्",
    "hamro gaun ma mobilizer aaunu hunchha ki haina",
    "hamro tole ma mobilizer aauchha ki aaudaina",
    "हाम्रो गाउँमा परिचालक आउनुहुन्छ कि हुन्न",
    "hamro wada ko parichalak ko ho",
    "hamro tole ma mobilizer le k garchha",
]
FEEDBACK = [
    "I want to give feedback about the mobilizer in our village",
    "complaint: the mobilizer never came",
    "why didn't the mobilizer come to our village?",
    "the mobilizer was very helpful",
    "the mobilizer in our tole is very good",
    "हाम्रो वडाको परिचालक धेरै राम्रो हुनुहुन्छ",
    "hamro gaun ko mobilizer le kaam garna aauchha tara meeting ma xaina",
    "हाम्रो गाउँको परिचालकबारे गुनासो छ",
    "परिचालक हाम्रो गाउँमा आएनन्",
    "परिचालक किन आउनुभएन?",
    "हाम्रो टोलमा परिचालक कहिल्यै आउनुहुन्न",
    "hamro ward ko mobilizer kahile pani aaudaina",
    "hamro gaun ko mobilizer bare gunaso chha",
    "parichalak hamro gaun ma aayenan",
    "mobilizer kina aaunu bhayena?",
]
# What the model made of such messages: feedback first, the FAQ topic behind.
TOOK_FOR_FEEDBACK = Understanding(
    "give_feedback",
    0.6,
    (
        Candidate("give_feedback", 0.6),
        Candidate("faq_mobilizer_role", 0.3),
        Candidate("out_of_scope", 0.1),
    ),
)


@pytest.mark.parametrize("text", QUESTIONS)
def test_questions_ask(text: str) -> None:
    assert asks_not_tells(text)


@pytest.mark.parametrize("text", FEEDBACK)
def test_feedback_tells(text: str) -> None:
    assert not asks_not_tells(text)


def test_the_policy_never_starts_feedback_for_a_question() -> None:
    known = {"mobilizer_role", "qualities"}
    for text in QUESTIONS:
        decision = decide(TOOK_FOR_FEEDBACK, known, NluPolicy(), text)
        assert decision == Decision("answer", ("mobilizer_role",)), text
    for text in FEEDBACK:
        decision = decide(TOOK_FOR_FEEDBACK, known, NluPolicy(), text)
        assert decision == Decision("intent", intent="give_feedback"), text
    # Without the text the model alone decides, as before.
    assert decide(TOOK_FOR_FEEDBACK, known, NluPolicy()).intent == "give_feedback"


def ranked(*pairs: tuple[str, float]) -> Understanding:
    return Understanding(pairs[0][0], pairs[0][1], tuple(Candidate(i, c) for i, c in pairs))


def test_feedback_set_aside_leaves_the_rest_to_the_usual_policy() -> None:
    known, question = {"mobilizer_role", "qualities"}, QUESTIONS[0]
    # Feedback runner-up: what is left is mostly the topic, so it is answered.
    behind = ranked(("faq_mobilizer_role", 0.49), ("give_feedback", 0.41), ("greet", 0.1))
    assert decide(behind, known, NluPolicy(), question) == Decision("answer", ("mobilizer_role",))
    # Two topics close in what is left: offered, not answered.
    split = ranked(("give_feedback", 0.5), ("faq_mobilizer_role", 0.26), ("faq_qualities", 0.24))
    assert decide(split, known, NluPolicy(), question).kind == "suggest"
    # A model all but sure of feedback leaves crumbs; they are not scaled up into an answer.
    crumbs = ranked(("give_feedback", 0.95), ("faq_mobilizer_role", 0.05))
    assert decide(crumbs, known, NluPolicy(), question) == Decision("unknown")


def _bot(clock: FakeClock) -> Bot:
    flows = Conversations(FlowBook.from_files(shipped()), kit(), ttl=timedelta(hours=24))
    return Bot(
        Content.load(),
        faq=Catalogue.load().topics,
        understand=lambda text: TOOK_FOR_FEEDBACK,
        flows=flows,
        clock=clock,
    )


def _send(bot: Bot, text: str) -> list[str]:
    contact = ContactState(phone="+9779800000001", channel=Channel.SMS)
    turn = bot.handle(Inbound(Channel.SMS, contact.phone, text), contact)
    return [o.kind for o in turn.outbounds]


def test_end_to_end_a_question_gets_the_answer_and_feedback_starts_the_flow() -> None:
    bot = _bot(FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC)))
    for text in QUESTIONS:
        assert _send(bot, text) == ["faq_mobilizer_role"], text
    for text in FEEDBACK:
        assert _send(bot, text) == ["feedback_started"], text
