"""Answering the clear FAQ questions when the NLU server is down, from the catalogue alone.

A nearest-neighbour matcher over the FAQ topics' own examples: word and character n-grams of
the folded text (`bot.core.wording.fold`), weighted by how rare they are (TF-IDF), compared
by cosine similarity. It answers only when the message names the FAQ's subject (a bare
"what are the steps" waits for the model), is not about
jobs or allowances, and is close to one topic's example and clearly closer than to any other
topic's; otherwise the bot says it will answer soon, as before. Measured on the held-out sets
(`bot nlu eval --fallback`); see the README.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.faq import FaqTopic, off_subject
from bot.core.text import normalize
from bot.core.wording import fold, mentions_subject

# The share of examples above which an n-gram is too common to look up.
COMMON_SHARE = 0.1


def features(text: str) -> Counter[str]:
    """Words, word pairs and character 3- and 4-grams of the folded text."""
    words = fold(normalize(text)).split()
    grams: Counter[str] = Counter(f"w:{w}" for w in words)
    grams.update(f"p:{a} {b}" for a, b in itertools.pairwise(words))
    for word in words:
        padded = f" {word} "
        for size in (3, 4):
            grams.update(f"c:{padded[i : i + size]}" for i in range(len(padded) - size + 1))
    return grams


@dataclass(frozen=True)
class Match:
    """The closest topic, its similarity and the best similarity of any other topic."""

    topic: str | None
    score: float
    runner_up: float


class FaqMatcher:
    """Nearest FAQ example by TF-IDF cosine; `answer` says whether the match is clear enough."""

    def __init__(
        self, topics: Iterable[FaqTopic], threshold: float = 0.35, margin: float = 0.15
    ) -> None:
        self.threshold = threshold
        self.margin = margin
        examples = [
            (topic.key, text)
            for topic in topics
            for texts in topic.examples.values()
            for text in (*texts, *topic.question.values())
        ]
        grams = [(key, features(text)) for key, text in examples]
        frequency: Counter[str] = Counter()
        for _, counts in grams:
            frequency.update(counts.keys())
        total = len(grams) or 1
        self._idf = {g: math.log((1 + total) / (1 + n)) + 1.0 for g, n in frequency.items()}
        self._keys = [key for key, _ in grams]
        # An inverted index: for each n-gram, the examples that have it and its weight there.
        self._postings: dict[str, list[tuple[int, float]]] = {}
        # N-grams most examples share ("ion ", " th") add about the same to every score: they
        # stay in the vectors' lengths but are not looked up, which keeps a match cheap.
        common = {g for g, n in frequency.items() if n > COMMON_SHARE * total}
        for number, (_, counts) in enumerate(grams):
            for gram, weight in self._vector(counts).items():
                if gram not in common:
                    self._postings.setdefault(gram, []).append((number, weight))

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        vector = {g: (1 + math.log(n)) * self._idf.get(g, 0.0) for g, n in counts.items()}
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        return {g: v / norm for g, v in vector.items() if v}

    def match(self, text: str) -> Match:
        """The topic whose example is most like `text`, and how alike."""
        scores: dict[int, float] = {}
        for gram, weight in self._vector(features(text)).items():
            for number, other in self._postings.get(gram, ()):
                scores[number] = scores.get(number, 0.0) + weight * other
        best: dict[str, float] = {}
        for number, score in scores.items():
            key = self._keys[number]
            if score > best.get(key, 0.0):
                best[key] = score
        if not best:
            return Match(None, 0.0, 0.0)
        ranked = sorted(best.items(), key=lambda item: -item[1])
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        return Match(ranked[0][0], ranked[0][1], runner_up)

    def answer(self, text: str) -> str | None:
        """The topic to answer with, or None when the match is not clear."""
        if not mentions_subject(text) or off_subject(text):
            return None
        found = self.match(text)
        if found.score >= self.threshold and found.score - found.runner_up >= self.margin:
            return found.topic
        return None
