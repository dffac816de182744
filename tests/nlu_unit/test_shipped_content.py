"""The FAQ catalogue and intents shipped in data/: complete, phone-sized, in the right scripts."""

from __future__ import annotations

import pytest

from bot.core.messages import Language
from bot.core.segments import count_segments
from bot.core.text import devanagari_share
from nlu.catalogue import CONVERSATIONAL, Catalogue

SEED_KEYS = {
    "mobilizer_role", "meaning", "benefits", "nepali_term", "who_involved", "steps",
    "importance", "qualities", "strategies",
}  # fmt: skip


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def test_every_seed_topic_and_intent_is_there(catalogue: Catalogue) -> None:
    assert set(catalogue.topics) == SEED_KEYS
    assert set(catalogue.intents) == set(CONVERSATIONAL)


def test_answers_fit_a_phone(catalogue: Catalogue) -> None:
    for topic in catalogue.topics.values():
        for part in filter(None, (topic.answer, topic.more)):
            english = count_segments(part[Language.EN])
            assert english.encoding == "GSM-7" and english.segments <= 2, topic.key
            assert count_segments(part[Language.NE]).segments <= 3, topic.key
        says_more = "MORE" in topic.answer[Language.EN]
        assert says_more == (topic.more is not None), topic.key
        assert ("MORE" in topic.answer[Language.NE]) == says_more, topic.key


def test_examples_are_in_their_scripts(catalogue: Catalogue) -> None:
    groups = [t.examples for t in catalogue.topics.values()]
    groups += [i.examples for i in catalogue.intents.values()]
    for examples in groups:
        assert all(devanagari_share(x) > 0.3 for x in examples["ne"]), examples["ne"]
        assert all(x.isascii() for x in examples["romanized"]), examples["romanized"]
        assert all(x.isascii() for x in examples["en"]), examples["en"]


def test_each_topic_has_enough_examples_in_every_script(catalogue: Catalogue) -> None:
    for topic in catalogue.topics.values():
        counts = {script: len(texts) for script, texts in topic.examples.items()}
        assert counts["en"] >= 25 and counts["ne"] >= 15 and counts["romanized"] >= 15, (
            topic.key,
            counts,
        )
