"""Scores the NLU on held-out sets end to end, through the bot's own handler and policy.

Two sets ship with the package: `nlu/eval.yml` (the first, plain questions) and
`nlu/heldout.yml` (issue 13: long, SMS-speak, code-mixed, look-alike and near-miss messages,
written before any training data for them). Each message goes through `Bot.handle` with the
shipped content, as a first message from a new contact, and the reply is classified: a FAQ
answer (right or wrong topic), "did you mean", another intent, or a refusal. Per language and
per kind it reports accuracy (FAQ answered with the right topic, other intents recognised,
out-of-scope not answered), how many out-of-scope questions were refused, how many FAQ
questions were only offered as "did you mean" or refused, and the wrong-answer rate: a
confident FAQ answer on the wrong topic, the failure that matters most.

`python -m nlu.evaluate --cv build/nlu/cv` summarises the reports of Rasa's cross-validation
(`rasa test nlu --cross-validation --out build/nlu/cv`, run by `make nlu-eval`).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.content import Content, ContentError, load_yaml
from bot.core.faq import FaqTopic, NluPolicy
from bot.core.handler import Bot
from bot.core.messages import Channel, ContactState, Inbound
from bot.core.understanding import Understand

# Package data: installed with the package, so `bot nlu eval` works outside a checkout.
EVAL_SET = Path(__file__).resolve().parent / "eval.yml"
HELDOUT_SET = Path(__file__).resolve().parent / "heldout.yml"
EVAL_SETS = (EVAL_SET, HELDOUT_SET)
LANGS = ("en", "ne", "romanized", "mixed")


@dataclass
class Tally:
    total: int = 0
    correct: int = 0
    wrong_answers: int = 0
    out_of_scope: int = 0
    refused: int = 0
    # FAQ questions (in scope) and what happened to those not answered right.
    in_scope: int = 0
    offered: int = 0  # only "did you mean"
    declined: int = 0  # refused outright (out of scope, or "we will answer soon")


@dataclass(frozen=True)
class Outcome:
    """What the bot did with one message: `answer` a topic, `suggest`, an `intent`, `refuse`."""

    kind: str
    name: str | None = None


def load_eval_set(path: Path = EVAL_SET) -> list[dict[str, str]]:
    """The evaluation items: text, expected topic or intent, language (and optional kind)."""
    items = load_yaml(path)
    if not isinstance(items, list):
        raise ContentError(f"{path}: expected a list of items")
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not {"text", "expect", "lang"} <= set(item):
            raise ContentError(f"{path}: item {number}: needs text, expect and lang")
        if item["lang"] not in LANGS:
            raise ContentError(f"{path}: item {number}: lang must be one of {LANGS}")
    return items


def outcome_of(bot: Bot, text: str) -> Outcome:
    """Sends `text` as a new contact's first message and classifies the bot's reply."""
    contact = ContactState(phone="+9779800000000", channel=Channel.SMS)
    turn = bot.handle(Inbound(Channel.SMS, contact.phone, text), contact)
    kinds = [o.kind for o in turn.outbounds]
    topic = next((k[len("faq_") :] for k in kinds if k.startswith("faq_")), None)
    if topic is not None and topic in bot.faq:
        return Outcome("answer", topic)
    if "did_you_mean" in kinds:
        return Outcome("suggest")
    if any(kind in ("out_of_scope", "nlu_unavailable") for kind in kinds) or not kinds:
        return Outcome("refuse")  # the polite refusal, or "we will answer soon"
    return Outcome("intent", turn.intent)


def evaluate(
    understand: Understand,
    topics: set[str] | Mapping[str, FaqTopic],
    items: Iterable[dict[str, str]],
    policy: NluPolicy,
    content: Content | None = None,
) -> dict[str, Tally]:
    """Runs every item through the bot; tallies per language, per kind and overall.

    Args:
        understand: the NLU (a Rasa client's `parse`, or one that raises NluUnavailable to
            score the bot's fallback alone).
        topics: the FAQ topics (a catalogue's `topics`; bare keys get placeholder answers).
        items: the evaluation items (`load_eval_set`).
        policy: the answer policy under test.
        content: the bot's texts and keywords (default: the shipped `data/`).
    """
    faq = dict(topics) if isinstance(topics, Mapping) else {k: _placeholder(k) for k in topics}
    bot = Bot(content or Content.load(), faq=faq, understand=understand, policy=policy)
    tallies: dict[str, Tally] = defaultdict(Tally)
    for item in items:
        result = outcome_of(bot, item["text"])
        expect = item["expect"]
        answered = result.name if result.kind == "answer" else None
        if expect in faq:
            correct = answered == expect
        elif expect == "out_of_scope":
            correct = result.kind in ("refuse", "suggest")
        else:
            correct = result.kind == "intent" and result.name == expect
        wrong = answered is not None and answered != expect
        keys = [item["lang"], "all"] + ([f"kind:{item['kind']}"] if item.get("kind") else [])
        for key in keys:
            tally = tallies[key]
            tally.total += 1
            tally.correct += correct
            tally.wrong_answers += wrong
            if expect == "out_of_scope":
                tally.out_of_scope += 1
                tally.refused += answered is None
            elif expect in faq:
                tally.in_scope += 1
                tally.offered += result.kind == "suggest"
                tally.declined += result.kind == "refuse"
    return dict(tallies)


def _placeholder(key: str) -> FaqTopic:
    from bot.core.messages import Language

    texts = {language: key for language in Language}
    return FaqTopic(key, texts, texts, None, {})


def report(tallies: dict[str, Tally]) -> str:
    """A table of the figures the NLU issue sets targets for, per language then per kind."""
    lines = [
        "| language / kind | items | accuracy | out-of-scope refused | wrong answers "
        "| FAQ questions: did you mean / refused |",
        "|---|---|---|---|---|---|",
    ]
    kinds = sorted(k for k in tallies if k.startswith("kind:"))
    for key in (*LANGS, "all", *kinds):
        t = tallies.get(key)
        if t is None:
            continue
        refused = (
            f"{t.refused}/{t.out_of_scope} ({t.refused / t.out_of_scope:.0%})"
            if t.out_of_scope
            else "-"
        )
        unanswered = f"{t.offered} / {t.declined} of {t.in_scope}" if t.in_scope else "-"
        lines.append(
            f"| {key} | {t.total} | {t.correct / t.total:.1%} | {refused} "
            f"| {t.wrong_answers} ({t.wrong_answers / t.total:.1%}) | {unanswered} |"
        )
    return "\n".join(lines)


# Rasa logs the mean (and spread) over the folds of the training and test sets' figures:
# "train Accuracy: 1.000 (0.000)". Its F1 here is the weighted average over intents.
_FOLD_FIGURE = re.compile(r"\b(train|test) (Accuracy|F1-score): ([0-9.]+) \(([0-9.]+)\)")
_FOLDS = re.compile(r"CV evaluation \(n=(\d+)\)")


def _percent(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" + (f" ± {spread:.1%}" if spread is not None else "")


def cv_summary(out_dir: Path, top: int = 8) -> str:
    """A compact summary of Rasa's cross-validation reports in `out_dir`.

    Test figures come from `intent_report.json` (the held-out folds pooled; ± is the spread
    between folds), train figures from Rasa's log `rasa.log` when it is there (Rasa logs only
    accuracy and weighted F1 for the training folds). The most frequent confusions follow.
    """
    path = out_dir / "intent_report.json"
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContentError(f"{path}: no cross-validation report ({exc})") from None
    if not isinstance(raw, dict) or not all(
        isinstance(raw.get(key), dict) for key in ("macro avg", "weighted avg")
    ):
        raise ContentError(f"{path}: expected Rasa's intent report")
    log = out_dir / "rasa.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    folds: dict[tuple[str, str], tuple[float, float]] = {
        (split, metric): (float(mean), float(spread))
        for split, metric, mean, spread in _FOLD_FIGURE.findall(text)
    }
    n_folds = _FOLDS.search(text)

    def fold(split: str, metric: str) -> tuple[float | None, float | None]:
        return folds.get((split, metric), (None, None))

    train_accuracy, train_f1 = fold("train", "Accuracy"), fold("train", "F1-score")
    test_accuracy_spread = fold("test", "Accuracy")[1]
    test_f1_spread = fold("test", "F1-score")[1]
    accuracy = raw.get("accuracy")
    if accuracy is None:  # sklearn reports micro avg instead when some labels are missing
        accuracy = raw.get("micro avg", {}).get("f1-score")
    examples = int(raw["weighted avg"].get("support", 0))
    heading = f"Rasa cross-validation: {examples} examples"
    heading += f", {n_folds.group(1)} folds" if n_folds else ""
    lines = [
        f"{heading} (reports in {out_dir})",
        "| split | intent accuracy | macro F1 | weighted F1 |",
        "|---|---|---|---|",
    ]
    if train_accuracy[0] is not None:
        lines.append(f"| train | {_percent(*train_accuracy)} | - | {_percent(*train_f1)} |")
    lines.append(
        f"| test | {_percent(accuracy, test_accuracy_spread)} "
        f"| {_percent(raw['macro avg'].get('f1-score'))} "
        f"| {_percent(raw['weighted avg'].get('f1-score'), test_f1_spread)} |"
    )
    confusions = sorted(
        (
            (-int(count), intent, other)
            for intent, figures in raw.items()
            if isinstance(figures, dict)
            for other, count in (figures.get("confused_with") or {}).items()
        ),
    )[:top]
    lines.append(
        "train: mean over the folds (Rasa logs no macro F1 for it); "
        "test: the held-out folds pooled, ± the spread between folds"
    )
    if confusions:
        pairs = ", ".join(f"{intent} → {other} {-count}" for count, intent, other in confusions)
        lines.append(f"most confused (true → predicted, test folds): {pairs}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """`python -m nlu.evaluate --cv DIR`: prints the cross-validation summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cv", type=Path, required=True, help="rasa test nlu --out folder")
    parser.add_argument("--top", type=int, default=8, help="how many confusions to show")
    args = parser.parse_args(argv)
    try:
        print(cv_summary(args.cv, args.top))
    except ContentError as exc:
        parser.exit(1, f"error: {exc}\n")


if __name__ == "__main__":
    main()
