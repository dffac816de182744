"""The evaluation arithmetic, with a scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.content import ContentError
from bot.core.faq import NluPolicy
from bot.core.understanding import Candidate, Understanding
from nlu.evaluate import evaluate, load_eval_set, report


def model(table: dict[str, tuple[str, float]]):  # type: ignore[no-untyped-def]
    def understand(text: str) -> Understanding:
        intent, confidence = table[text]
        return Understanding(intent, confidence, (Candidate(intent, confidence),))

    return understand


def test_scores_accuracy_refusals_and_wrong_answers() -> None:
    items = [
        {"text": "a", "expect": "steps", "lang": "en"},  # right answer
        {"text": "b", "expect": "steps", "lang": "en"},  # confident wrong topic
        {"text": "c", "expect": "out_of_scope", "lang": "ne"},  # refused
        {"text": "d", "expect": "out_of_scope", "lang": "ne"},  # answered: wrong
        {"text": "e", "expect": "greet", "lang": "romanized"},  # intent recognised
    ]
    understand = model({
        "a": ("faq_steps", 0.9), "b": ("faq_meaning", 0.9), "c": ("out_of_scope", 0.9),
        "d": ("faq_steps", 0.95), "e": ("greet", 0.9),
    })  # fmt: skip
    tallies = evaluate(understand, {"steps", "meaning"}, items, NluPolicy())
    overall = tallies["all"]
    assert (overall.total, overall.correct, overall.wrong_answers) == (5, 3, 2)
    assert (overall.out_of_scope, overall.refused) == (2, 1)
    assert (tallies["en"].correct, tallies["ne"].refused) == (1, 1)
    assert "| all | 5 | 60.0% | 1/2 (50%) | 2 (40.0%) |" in report(tallies)


def test_shipped_eval_set_loads_and_bad_one_is_named(tmp_path: Path) -> None:
    assert len(load_eval_set()) >= 90
    bad = tmp_path / "eval.yml"
    bad.write_text("- text: hi\n  expect: greet\n  lang: fr\n", encoding="utf-8")
    with pytest.raises(ContentError, match="item 1"):
        load_eval_set(bad)
