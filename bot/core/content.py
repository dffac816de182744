"""Loads the bot's texts and keyword lists from `data/` and checks them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.core.messages import Language
from bot.core.text import normalize

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


class ContentError(ValueError):
    """A content file is malformed; the message names the file and what is wrong."""


def load_yaml(path: Path) -> Any:
    """Parses a YAML file, naming the file and line in any error."""
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ContentError(f"{path}{line}: {exc.problem or exc}") from None
    except OSError as exc:
        raise ContentError(f"{path}: {exc.strerror}") from None


def bilingual(path: Path, raw: Any, field: str) -> dict[Language, str]:
    """One text in every language (`en:`, `ne:`), whitespace folded; errors name the field."""
    if not isinstance(raw, dict):
        raise ContentError(f"{path}: {field}: expected en: and ne: texts")
    texts: dict[Language, str] = {}
    for language in Language:
        text = raw.get(language.value)
        if not isinstance(text, str) or not text.strip():
            raise ContentError(f"{path}: {field}: missing the {language.value!r} text")
        texts[language] = " ".join(text.split())
    return texts


@dataclass(frozen=True)
class Texts:
    """The bot's own texts, one per key and language."""

    by_key: Mapping[str, Mapping[Language, str]]

    def get(self, key: str, language: Language) -> str:
        """The text `key` in `language`."""
        return self.by_key[key][language]

    @classmethod
    def load(cls, path: Path) -> Texts:
        """Loads and checks `data/messages.yml`: every key needs every language."""
        raw = load_yaml(path)
        if not isinstance(raw, dict):
            raise ContentError(f"{path}: expected a mapping of text keys")
        return cls({str(key): bilingual(path, variants, str(key)) for key, variants in raw.items()})


# Every keyword action; `feedback` also matches as the first word of a longer message.
ACTIONS = ("opt_out", "opt_in", "help", "language", "more", "survey", "feedback", "broadcast")
OPEN_ENDED = frozenset({"feedback", "broadcast"})


@dataclass(frozen=True)
class Keywords:
    """Keyword phrases per action, already folded by :func:`normalize`."""

    phrases: Mapping[str, frozenset[str]]
    language_names: Mapping[str, Language]
    max_words: int

    @classmethod
    def load(cls, path: Path) -> Keywords:
        """Loads `data/keywords.yml`."""
        raw = load_yaml(path)
        if not isinstance(raw, dict):
            raise ContentError(f"{path}: expected a mapping")
        phrases: dict[str, frozenset[str]] = {}
        for action in ACTIONS:
            words = raw.get(action)
            if not isinstance(words, list) or not words:
                raise ContentError(f"{path}: {action}: expected a list of keywords")
            phrases[action] = frozenset(normalize(str(w)) for w in words)
        seen: dict[str, str] = {}
        for action, words in phrases.items():
            for word in words:
                if word in seen:
                    raise ContentError(f"{path}: {word!r} is both {seen[word]} and {action}")
                seen[word] = action
        names: dict[str, Language] = {}
        for code, words in (raw.get("language_names") or {}).items():
            for word in words:
                names[normalize(str(word))] = Language(code)
        return cls(phrases, names, int(raw.get("max_words", 3)))


@dataclass(frozen=True)
class Content:
    """Everything the core reads from `data/`, loaded once per process."""

    texts: Texts
    keywords: Keywords
    romanized_nepali: frozenset[str]
    english_markers: frozenset[str]

    @classmethod
    def load(cls, data_dir: Path = DATA_DIR) -> Content:
        """Loads and checks every content file under `data_dir`."""
        languages = load_yaml(data_dir / "languages.yml") or {}
        return cls(
            texts=Texts.load(data_dir / "messages.yml"),
            keywords=Keywords.load(data_dir / "keywords.yml"),
            romanized_nepali=frozenset(
                normalize(str(w)) for w in languages.get("romanized_nepali", [])
            ),
            english_markers=frozenset(normalize(str(w)) for w in languages.get("english", [])),
        )
