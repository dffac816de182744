"""Scores the NLU on the held-out set in `tests/nlu/eval.yml`, through the bot's own policy.

Per language it reports accuracy (FAQ answered with the right topic, other intents recognised,
out-of-scope not answered), how many out-of-scope questions were refused, and the wrong-answer
rate: a confident FAQ answer on the wrong topic, the failure that matters most.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bot.core.content import ContentError, load_yaml
from bot.core.faq import NluPolicy, decide
from bot.core.understanding import Understand

EVAL_SET = Path(__file__).resolve().parent.parent / "tests" / "nlu" / "eval.yml"
LANGS = ("en", "ne", "romanized")


@dataclass
class Tally:
    total: int = 0
    correct: int = 0
    wrong_answers: int = 0
    out_of_scope: int = 0
    refused: int = 0


def load_eval_set(path: Path = EVAL_SET) -> list[dict[str, str]]:
    """The evaluation items: text, expected topic or intent, language."""
    items = load_yaml(path)
    if not isinstance(items, list):
        raise ContentError(f"{path}: expected a list of items")
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not {"text", "expect", "lang"} <= set(item):
            raise ContentError(f"{path}: item {number}: needs text, expect and lang")
        if item["lang"] not in LANGS:
            raise ContentError(f"{path}: item {number}: lang must be one of {LANGS}")
    return items


def evaluate(
    understand: Understand, topics: set[str], items: list[dict[str, str]], policy: NluPolicy
) -> dict[str, Tally]:
    """Runs every item through the model and the policy; tallies per language and overall."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    for item in items:
        decision = decide(understand(item["text"]), topics, policy)
        expect = item["expect"]
        answered = decision.topics[0] if decision.kind == "answer" else None
        if expect in topics:
            correct = answered == expect
        elif expect == "out_of_scope":
            correct = answered is None and decision.kind != "intent"
        else:
            correct = decision.kind == "intent" and decision.intent == expect
        wrong = answered is not None and answered != expect
        for key in (item["lang"], "all"):
            tally = tallies[key]
            tally.total += 1
            tally.correct += correct
            tally.wrong_answers += wrong
            if expect == "out_of_scope":
                tally.out_of_scope += 1
                tally.refused += answered is None
    return dict(tallies)


def report(tallies: dict[str, Tally]) -> str:
    """A table of the figures the NLU issue sets targets for."""
    lines = [
        "| language | items | accuracy | out-of-scope refused | wrong answers |",
        "|---|---|---|---|---|",
    ]
    for key in (*LANGS, "all"):
        t = tallies.get(key)
        if t is None:
            continue
        refused = (
            f"{t.refused}/{t.out_of_scope} ({t.refused / t.out_of_scope:.0%})"
            if t.out_of_scope
            else "-"
        )
        lines.append(
            f"| {key} | {t.total} | {t.correct / t.total:.1%} | {refused} "
            f"| {t.wrong_answers} ({t.wrong_answers / t.total:.1%}) |"
        )
    return "\n".join(lines)
