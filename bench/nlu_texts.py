"""Non-repeating FAQ-like questions for NLU benchmarks, and what the bot's replies to them were.

The seeds are the FAQ topics' training examples (`data/faq/*.yml`) and the held-out questions
(`nlu/eval.yml`) in English, Devanagari Nepali and romanized Nepali. Each question handed
out is a seed with people's noise added — a greeting or filler before it, a trailing word,
punctuation, a ward or tole number, a typo in a Latin-script word — and no text is ever
handed out twice by one generator, so neither Rasa nor any cache in the service sees a text
again: the figures measure the model, not a lookup. Texts that the bot would take as a
keyword (HELP, STOP, …) are skipped: they never reach the NLU.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.content import Content
from bot.core.keywords import match_keyword
from bot.core.messages import Language
from nlu.catalogue import Catalogue
from nlu.evaluate import load_eval_set

NEPALI_DIGITS = str.maketrans("0123456789", "०१२३४५६७८९")
_LATIN_WORD = re.compile(r"[A-Za-z]{5,}")

# (before, after) noise per script; "{n}" becomes a number. Kept away from keywords and
# from words that would change the question's meaning.
PREFIXES = {
    "en": ["", "", "", "hi", "hello", "dear sir", "excuse me,", "quick question:", "namaste,",
           "sorry to bother,", "good morning", "one question", "madam"],
    "ne": ["", "", "", "नमस्ते", "नमस्कार,", "हजुर", "कृपया", "एउटा प्रश्न:", "दाइ,", "दिदी,"],
    "romanized": ["", "", "", "namaste", "namaskar", "hajur", "dai", "didi", "ek prashna",
                  "kripaya", "sir"],
}  # fmt: skip
SUFFIXES = {
    "en": ["", "", "?", "??", " pls", " please", " sir", " from ward {n}", " ward no {n}",
           " (tole {n})", " - sent from ward {n}", " :)", " ..."],
    "ne": ["", "", "?", " हजुर", " कृपया", " वडा नं {n}", " वडा {n} बाट", " ({n})", " ।"],
    "romanized": ["", "", "?", " hai", " hajur", " ward no {n}", " wada {n} bata", " ({n})",
                  " pls", " ni"],
}  # fmt: skip


@dataclass(frozen=True)
class Question:
    """One generated question: its text, the FAQ topic it asks about and its script."""

    text: str
    topic: str
    script: str


def _typo(text: str, rng: random.Random) -> str:
    """Swaps two neighbouring letters of a longer Latin word, or drops one."""
    words = [m for m in _LATIN_WORD.finditer(text)]
    if not words:
        return text
    match = rng.choice(words)
    word = match.group()
    i = rng.randrange(1, len(word) - 2)
    if rng.random() < 0.5:
        changed = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    else:
        changed = word[:i] + word[i + 1 :]
    return text[: match.start()] + changed + text[match.end() :]


class QuestionGenerator:
    """Hands out FAQ questions that never repeat (case and spacing folded)."""

    def __init__(self, seed: int = 7, catalogue: Catalogue | None = None) -> None:
        self.rng = random.Random(seed)
        self.catalogue = catalogue or Catalogue.load()
        self.content = Content.load()
        topics = set(self.catalogue.topics)
        seeds = [
            (text, topic.key, script)
            for topic in self.catalogue.topics.values()
            for script, texts in topic.examples.items()
            for text in texts
        ]
        seeds += [
            (item["text"], item["expect"], item["lang"])
            for item in load_eval_set()
            if item["expect"] in topics
        ]
        self.seeds = seeds
        self.seen: set[str] = set()

    def _variant(self, text: str, script: str, force_number: bool) -> str:
        rng = self.rng
        before = rng.choice(PREFIXES[script])
        after = rng.choice(SUFFIXES[script])
        if force_number and "{n}" not in after:
            after = rng.choice([s for s in SUFFIXES[script] if "{n}" in s])
        if script != "ne" and rng.random() < 0.3:
            text = _typo(text, rng)
        if script != "ne" and rng.random() < 0.15:
            text = text.capitalize()
        number = str(rng.randint(1, 35 if rng.random() < 0.7 else 999))
        if script == "ne" and rng.random() < 0.6:
            number = number.translate(NEPALI_DIGITS)
        return " ".join(f"{before} {text}{after.replace('{n}', number)}".split())

    def next(self) -> Question:
        """The next question, never one handed out before."""
        for attempt in range(200):
            text, topic, script = self.rng.choice(self.seeds)
            candidate = self._variant(text, script, force_number=attempt >= 20)
            folded = candidate.casefold()
            if folded in self.seen:
                continue
            if match_keyword(candidate, self.content.keywords) is not None:
                continue
            self.seen.add(folded)
            return Question(candidate, topic, script)
        raise RuntimeError("could not find a new question in 200 tries")

    def take(self, count: int) -> list[Question]:
        return [self.next() for _ in range(count)]


class ReplyKinds:
    """Sorts the bot's replies: a FAQ answer (right or wrong topic), "Did you mean", or other."""

    def __init__(self, catalogue: Catalogue, content: Content) -> None:
        self.answers: dict[str, str] = {}
        for topic in catalogue.topics.values():
            for language in Language:
                self.answers[topic.answer[language].strip()] = topic.key
        texts = content.texts
        self.did_you_mean = tuple(texts.get("did_you_mean", lang) for lang in Language)
        self.fixed = {
            texts.get(key, lang).strip(): key
            for key in ("out_of_scope", "nlu_unavailable", "help_menu")
            for lang in Language
        }

    def kind(self, body: str, expected_topic: str) -> str:
        """`faq_right`, `faq_wrong`, `did_you_mean`, `out_of_scope`, `nlu_unavailable`,
        `help_menu` or `other` (greeting, thanks, …)."""
        body = body.strip()
        topic = self.answers.get(body)
        if topic is None:
            topic = next((t for a, t in self.answers.items() if body.startswith(a)), None)
        if topic is not None:
            return "faq_right" if topic == expected_topic else "faq_wrong"
        if body.startswith(self.did_you_mean):
            return "did_you_mean"
        return self.fixed.get(body, "other")

    def tally(self, pairs: Iterable[tuple[str, str]]) -> Counter[str]:
        """Counts of each kind over (body, expected topic) pairs."""
        return Counter(self.kind(body, topic) for body, topic in pairs)
