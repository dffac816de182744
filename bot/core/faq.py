"""Deciding what to do with the NLU's answer: answer, offer choices, or admit not knowing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from bot.core.messages import Language
from bot.core.understanding import Understanding
from bot.core.wording import (
    asks_not_tells,
    mentions_domain,
    mentions_subject,
    near_miss,
    other_words,
)

FAQ_PREFIX = "faq_"
FEEDBACK_INTENT = "give_feedback"
MIN_REST = 0.2  # what a question taken for feedback must leave to the other intents


@dataclass(frozen=True)
class FaqTopic:
    """One FAQ topic: what it answers and how people ask it (loaded by nlu.catalogue)."""

    key: str
    question: Mapping[Language, str]
    answer: Mapping[Language, str]
    more: Mapping[Language, str] | None
    examples: Mapping[str, tuple[str, ...]]

    @property
    def intent(self) -> str:
        """The NLU intent that reports this topic."""
        return f"{FAQ_PREFIX}{self.key}"


@dataclass(frozen=True)
class NluPolicy:
    """When a FAQ answer is trusted. Below `threshold`, or within `margin` of the runner-up,
    the bot offers the likely topics instead of guessing."""

    threshold: float = 0.55
    margin: float = 0.15
    suggest_min: float = 0.12
    max_suggestions: int = 3


@dataclass(frozen=True)
class Decision:
    """What to do: `answer` a topic, `suggest` topics, reply to an `intent`, or `unknown`."""

    kind: str
    topics: tuple[str, ...] = ()
    intent: str | None = None


def topic_of(intent: str | None) -> str | None:
    """The FAQ key an intent reports (`faq_steps` → `steps`, `faq/steps` → `steps`)."""
    if intent and intent.startswith(FAQ_PREFIX):
        return intent[len(FAQ_PREFIX) :]
    if intent and intent.startswith("faq/"):
        return intent[len("faq/") :]
    return None


def off_subject(text: str) -> bool:
    """True when `text` cannot be a FAQ question: it is about jobs, pay or allowances, or it
    names another subject and never the FAQ's (social mobilization, mobilizers).

    "what are the steps" names no subject: on this line it asks about the FAQ's. "What are
    the steps to register a birth" names another one.
    """
    return near_miss(text) or (not mentions_subject(text) and bool(other_words(text)))


def decide(
    understanding: Understanding, known: set[str], policy: NluPolicy, text: str | None = None
) -> Decision:
    """Turns the model's ranking into a decision, never bluffing a low-confidence answer.

    With the message's `text`, a question the model took for feedback, even in part
    (`asks_not_tells`), is decided on the rest of the ranking, and a message off the FAQ's
    subject (`off_subject`) never gets a FAQ answer: "why is hand washing important" has the
    shape of the importance question but is not about mobilization, so it is refused. Only
    when it has a word of the FAQ's world ("how to involve community leaders") are the likely
    topics offered instead.
    """
    ranking = sorted(understanding.ranking, key=lambda c: -c.confidence)
    top = understanding.intent
    confidence = understanding.confidence
    feedback = next((c.confidence for c in ranking if c.intent == FEEDBACK_INTENT), 0.0)
    if text is not None and feedback and asks_not_tells(text):
        # "Will a mobilizer come to our village?" looks like feedback about one's village to
        # the model, but it asks: feedback is ruled out, so decide on the rest of the ranking,
        # each share taken as a part of what is left. Crumbs left by a model all but sure of
        # feedback are not scaled up into an answer.
        rest = 1.0 - feedback
        scale = 1.0 / rest if rest >= MIN_REST else 1.0
        ranking = [
            replace(c, confidence=c.confidence * scale)
            for c in ranking
            if c.intent != FEEDBACK_INTENT
        ]
        top = ranking[0].intent if ranking else None
        confidence = ranking[0].confidence if ranking else 0.0
    if text is not None and off_subject(text):
        if near_miss(text) or not mentions_domain(text):
            known = set()
        elif topic_of(top) in known:
            policy = replace(policy, threshold=1.01)  # offer, never answer
    runner_up = next((c.confidence for c in ranking if c.intent != top), 0.0)
    top_topic = topic_of(top)
    if (
        top_topic in known
        and confidence >= policy.threshold
        and confidence - runner_up >= policy.margin
    ):
        return Decision("answer", (top_topic,))
    if top and top_topic is None and top != "out_of_scope" and confidence >= policy.threshold:
        return Decision("intent", intent=top)
    likely = tuple(
        key
        for c in ranking
        if (key := topic_of(c.intent)) in known and c.confidence >= policy.suggest_min
    )[: policy.max_suggestions]
    confidently_out_of_scope = top == "out_of_scope" and confidence >= policy.threshold
    if likely and not confidently_out_of_scope:
        return Decision("suggest", likely)
    return Decision("unknown")
