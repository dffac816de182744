"""Understands answers the way people type them on a phone.

Digits and Nepali digits, option words in English, Nepali or romanized Nepali, small typos,
yes/no in all three forms, "1 3 4" / "1,3" / "134" for several choices, small number words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.core.content import DATA_DIR, ContentError, load_yaml
from bot.core.text import normalize
from flows.schema import Answer, Option, Question


@dataclass(frozen=True)
class Vocabulary:
    """Words that mean the same in every flow: yes, no, skip, quit, all, numbers."""

    yes: frozenset[str]
    no: frozenset[str]
    skip: frozenset[str]
    quit: frozenset[str]
    all: frozenset[str]
    numbers: Mapping[str, int]
    # Words around a number or between choices that carry no meaning ("option 2", "1 and 3").
    filler: frozenset[str]

    @classmethod
    def load(cls, path: Path = DATA_DIR / "flows" / "words.yml") -> Vocabulary:
        """Loads `data/flows/words.yml`; every list must be present and non-empty."""
        raw = load_yaml(path)
        if not isinstance(raw, dict):
            raise ContentError(f"{path}: expected a mapping")

        def words(name: str) -> frozenset[str]:
            value = raw.get(name)
            if not isinstance(value, list) or not value:
                raise ContentError(f"{path}: {name}: expected a list of words")
            return frozenset(normalize(str(w)) for w in value if normalize(str(w)))

        numbers_raw = raw.get("numbers")
        if not isinstance(numbers_raw, dict):
            raise ContentError(f"{path}: numbers: expected a mapping of number: [words]")
        numbers = {
            normalize(str(word)): int(number)
            for number, spellings in numbers_raw.items()
            for word in spellings
        }
        vocabulary = cls(
            yes=words("yes"),
            no=words("no"),
            skip=words("skip"),
            quit=words("quit"),
            all=words("all"),
            numbers=numbers,
            filler=words("filler"),
        )
        clash = vocabulary.yes & vocabulary.no
        if clash:
            raise ContentError(f"{path}: {sorted(clash)} are both yes and no")
        return vocabulary


@dataclass(frozen=True)
class Invalid:
    """The text is not an answer to the question; `reason` picks the re-ask message."""

    reason: str = "not_understood"  # or too_many, out_of_range, too_long, empty


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance between `a` and `b`, or `limit + 1` once it exceeds `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _typo_limit(word: str) -> int:
    """How many typos a word may carry and still be recognised: none in short words."""
    if len(word) < 4:
        return 0
    return 1 if len(word) < 8 else 2


def _close(token: str, words: Iterable[str]) -> bool:
    return any(
        edit_distance(token, word, _typo_limit(word)) <= _typo_limit(word)
        for word in words
        if " " not in word
    )


def _contains_phrase(tokens: list[str], phrase: str) -> bool:
    parts = phrase.split()
    size = len(parts)
    return any(tokens[i : i + size] == parts for i in range(len(tokens) - size + 1))


def _options_named(tokens: list[str], options: tuple[Option, ...]) -> list[Option]:
    """Options whose label or alias appears in the text, else those a typo away."""
    named = [o for o in options if any(_contains_phrase(tokens, w) for w in o.words)]
    if named:
        return named
    return [o for o in options if any(_close(t, o.words) for t in tokens if len(t) >= 4)]


def _number_tokens(tokens: list[str], vocabulary: Vocabulary) -> tuple[list[int], list[str]]:
    """Splits tokens into numbers (digits or number words) and the rest."""
    numbers: list[int] = []
    rest: list[str] = []
    for token in tokens:
        if token.isdigit():
            numbers.append(int(token))
        elif token in vocabulary.numbers:
            numbers.append(vocabulary.numbers[token])
        else:
            rest.append(token)
    return numbers, rest


def _yes_no(folded: str, tokens: list[str], vocabulary: Vocabulary) -> str | None:
    if folded in vocabulary.yes or folded == "1":
        return "yes"
    if folded in vocabulary.no or folded == "2":
        return "no"
    # "yesss", "noo", "hoinaa": people stretch short words.
    tokens = [*tokens, *(re.sub(r"(.)\1+", r"\1", t) for t in tokens)]
    yes = any(t in vocabulary.yes for t in tokens)
    no = any(t in vocabulary.no for t in tokens)
    if not yes and not no:  # "yess", "hoinaa": a typo away
        yes = any(_close(t, vocabulary.yes) for t in tokens)
        no = any(_close(t, vocabulary.no) for t in tokens)
    if yes != no:
        return "yes" if yes else "no"
    return None


def _single(tokens: list[str], question: Question, vocabulary: Vocabulary) -> Answer | Invalid:
    numbers, rest = _number_tokens(tokens, vocabulary)
    if numbers and all(t in vocabulary.filler for t in rest):
        if len(numbers) != 1:
            return Invalid("too_many")
        if not 1 <= numbers[0] <= len(question.options):
            return Invalid("out_of_range")
        return question.options[numbers[0] - 1].value
    named = _options_named(tokens, question.options)
    if len(named) == 1:
        return named[0].value
    return Invalid("too_many" if named else "not_understood")


def _multi(tokens: list[str], question: Question, vocabulary: Vocabulary) -> Answer | Invalid:
    options = question.options
    if any(t in vocabulary.all for t in tokens) and len(tokens) <= 3:
        chosen = set(range(len(options)))
    else:
        # "134" means 1, 3 and 4 when every option has a one-digit number.
        if len(tokens) == 1 and tokens[0].isdigit() and len(tokens[0]) > 1 and len(options) < 10:
            tokens = list(tokens[0])
        numbers, rest = _number_tokens(tokens, vocabulary)
        if any(not 1 <= n <= len(options) for n in numbers):
            return Invalid("out_of_range")
        chosen = {n - 1 for n in numbers}
        words = [t for t in rest if t not in vocabulary.filler]
        if words:
            named = _options_named(words, options)
            if not named:
                return Invalid("not_understood")
            chosen |= {options.index(o) for o in named}
    if not chosen:
        return Invalid("not_understood")
    if question.max_choices is not None and len(chosen) > question.max_choices:
        return Invalid("too_many")
    return [options[i].value for i in sorted(chosen)]


def _number(tokens: list[str], question: Question, vocabulary: Vocabulary) -> Answer | Invalid:
    numbers, _ = _number_tokens(tokens, vocabulary)
    if len(numbers) != 1:
        return Invalid("not_understood" if not numbers else "too_many")
    value = numbers[0]
    assert question.minimum is not None and question.maximum is not None
    if not question.minimum <= value <= question.maximum:
        return Invalid("out_of_range")
    return value


def parse_answer(text: str, question: Question, vocabulary: Vocabulary) -> Answer | Invalid:
    """The answer `text` gives to `question`, or why it is not one.

    Returns the option value (single, yes/no), a list of option values in option order
    (multi), an int (number) or the text itself (free text).
    """
    if question.type == "text":
        cleaned = " ".join(text.split())
        if not cleaned:
            return Invalid("empty")
        if len(cleaned) > question.max_length:
            return Invalid("too_long")
        return cleaned
    folded = normalize(text)
    if not folded:
        return Invalid("empty")
    tokens = folded.split()
    if question.type == "yesno":
        answer = _yes_no(folded, tokens, vocabulary)
        return answer if answer is not None else Invalid()
    if question.type == "single":
        return _single(tokens, question, vocabulary)
    if question.type == "multi":
        return _multi(tokens, question, vocabulary)
    if question.type == "number":
        return _number(tokens, question, vocabulary)
    raise AssertionError(question.type)


def yes_or_no(text: str, vocabulary: Vocabulary) -> str | None:
    """ "yes", "no" or None for a short reply in any of the three forms."""
    folded = normalize(text)
    if not folded or len(folded.split()) > 4:
        return None
    return _yes_no(folded, folded.split(), vocabulary)


def is_word(text: str, words: frozenset[str]) -> bool:
    """Whether the whole message is one of `words` (SKIP, QUIT), after folding."""
    return normalize(text) in words
