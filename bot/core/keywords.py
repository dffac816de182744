"""Keyword detection (STOP / START / HELP / LANG in every language) and language guessing."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.content import OPEN_ENDED, Content, Keywords
from bot.core.messages import Language
from bot.core.text import devanagari_share, normalize


@dataclass(frozen=True)
class KeywordMatch:
    """A keyword found in a message, with the language it names (LANG NE) if any."""

    action: str  # opt_out, opt_in, help, language, more, survey, feedback
    argument: Language | None = None
    rest: str = ""  # the words after a one-word keyword, as typed ("SURVEY water", "FEEDBACK …")


def match_keyword(body: str, keywords: Keywords) -> KeywordMatch | None:
    """Finds the keyword a message is, if it is one.

    A message matches when its folded text is a keyword phrase, or starts with a one-word
    keyword and has at most ``keywords.max_words`` words. LANG may be followed by a language.
    """
    folded = normalize(body)
    if not folded:
        return None
    words = folded.split()
    for action, phrases in keywords.phrases.items():
        if folded in phrases:
            return KeywordMatch(action)
    first = words[0]
    typed = body.strip().split(None, 1)
    rest = typed[1].strip() if len(typed) > 1 and normalize(typed[0]) == first else ""
    for action in OPEN_ENDED:
        if first in keywords.phrases[action]:
            return KeywordMatch(action, rest=rest)
    if len(words) > keywords.max_words:
        return None
    for action, phrases in keywords.phrases.items():
        if first in phrases:
            if action == "language":
                named = " ".join(words[1:])
                return KeywordMatch(action, keywords.language_names.get(named))
            return KeywordMatch(action, rest=rest)
    return None


def detect_language(body: str, content: Content) -> Language | None:
    """Guesses the language of a message: Devanagari or romanized Nepali means Nepali.

    Returns None when there is nothing to go on (empty, digits, emoji only).
    """
    if devanagari_share(body) >= 0.3:
        return Language.NE
    words = normalize(body).split()
    if not any(w.isalpha() for w in words):
        return None
    nepali = sum(1 for w in words if w in content.romanized_nepali)
    english = sum(1 for w in words if w in content.english_markers)
    if nepali and nepali > english:
        return Language.NE
    return Language.EN
