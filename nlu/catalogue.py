"""The FAQ catalogue and intent examples: one YAML file per topic under `data/`.

`data/faq/<key>.yml` holds a topic's question, answer (and optional `more`) in English and
Nepali, and its training examples in English, Devanagari and romanized Nepali.
`data/intents/<intent>.yml` holds examples for conversational intents and out-of-scope.
Adding a topic is adding one file and retraining.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.content import DATA_DIR, ContentError, bilingual, load_yaml
from bot.core.faq import FaqTopic

EXAMPLE_SCRIPTS = ("en", "ne", "romanized")
KEY = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
CONVERSATIONAL = (
    "greet", "goodbye", "thanks", "help", "opt_out", "opt_in", "start_survey",
    "give_feedback", "talk_to_human", "out_of_scope",
)  # fmt: skip


@dataclass(frozen=True)
class IntentExamples:
    """Training examples of a conversational intent."""

    intent: str
    examples: Mapping[str, tuple[str, ...]]


def _examples(path: Path, raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ContentError(f"{path}: examples: expected en:, ne: and romanized: lists")
    out: dict[str, tuple[str, ...]] = {}
    for script in EXAMPLE_SCRIPTS:
        items = raw.get(script)
        if not isinstance(items, list) or not items:
            raise ContentError(f"{path}: examples: missing the {script!r} list")
        texts = tuple(" ".join(str(item).split()) for item in items)
        if any(not text for text in texts):
            raise ContentError(f"{path}: examples: {script}: empty example")
        out[script] = texts
    return out


def load_topic(path: Path) -> FaqTopic:
    """Loads and checks one FAQ file; errors name the file and what is wrong."""
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ContentError(f"{path}: expected a mapping with key, question, answer, examples")
    key = raw.get("key")
    if not isinstance(key, str) or not KEY.match(key):
        raise ContentError(f"{path}: key: expected lower_case_with_underscores, got {key!r}")
    if key != path.stem:
        raise ContentError(f"{path}: key {key!r} must match the file name")
    unknown = set(raw) - {"key", "question", "answer", "more", "examples"}
    if unknown:
        raise ContentError(f"{path}: unknown fields {sorted(unknown)}")
    return FaqTopic(
        key=key,
        question=bilingual(path, raw.get("question"), "question"),
        answer=bilingual(path, raw.get("answer"), "answer"),
        more=bilingual(path, raw["more"], "more") if raw.get("more") is not None else None,
        examples=_examples(path, raw.get("examples")),
    )


def load_intent(path: Path) -> IntentExamples:
    """Loads one conversational intent's examples."""
    raw = load_yaml(path)
    if not isinstance(raw, dict) or raw.get("intent") != path.stem:
        raise ContentError(f"{path}: expected `intent: {path.stem}` and examples")
    if path.stem.startswith("faq"):
        raise ContentError(f"{path}: only FAQ topics may have intents starting with 'faq'")
    return IntentExamples(path.stem, _examples(path, raw.get("examples")))


@dataclass(frozen=True)
class Catalogue:
    """Every FAQ topic and conversational intent, loaded once."""

    topics: Mapping[str, FaqTopic]
    intents: Mapping[str, IntentExamples]

    @classmethod
    def load(cls, data_dir: Path = DATA_DIR) -> Catalogue:
        """Loads `data/faq/*.yml` and `data/intents/*.yml`, checking each file."""
        topics = {t.key: t for t in map(load_topic, sorted((data_dir / "faq").glob("*.yml")))}
        intents = {
            i.intent: i for i in map(load_intent, sorted((data_dir / "intents").glob("*.yml")))
        }
        seen: dict[str, str] = {}
        for name, examples in [
            *((t.intent, t.examples) for t in topics.values()),
            *((i.intent, i.examples) for i in intents.values()),
        ]:
            for text in (x for texts in examples.values() for x in texts):
                folded = text.casefold()
                if folded in seen and seen[folded] != name:
                    raise ContentError(f"the example {text!r} is in both {seen[folded]} and {name}")
                seen[folded] = name
        return cls(topics, intents)
