"""Text helpers for matching what people type: case, accents, punctuation and script."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_DEVANAGARI = range(0x0900, 0x0980)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
# Devanagari digits fold to ASCII so "१" and "1" mean the same everywhere.
_DIGITS = {0x0966 + i: ord(str(i)) for i in range(10)}


def _strip_latin_accents(text: str) -> str:
    """Drops combining accents on Latin letters only: Devanagari vowel signs are letters' parts."""
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char) and out and ord(out[-1]) < 0x0250:
            continue
        out.append(char)
    return unicodedata.normalize("NFC", "".join(out))


# One turn folds the same body several times (keywords, language, FAQ wording), and the
# catalogue's own phrases at every turn: a pure function of its text, so remember the latest.
@lru_cache(maxsize=2048)
def normalize(text: str) -> str:
    """Folds text for matching: case, Latin accents, punctuation, digits and spacing.

    >>> normalize("  ¡STÓP!! ")
    'stop'
    >>> normalize("बन्द।")
    'बन्द'
    """
    folded = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_DIGITS)
    folded = _strip_latin_accents(folded.casefold())
    kept = []
    for char in folded:
        category = unicodedata.category(char)
        kept.append(" " if category[0] in "PSZC" else char)
    return " ".join("".join(kept).split())


def devanagari_share(text: str) -> float:
    """The share of letters in `text` that are Devanagari (0.0 when there are no letters)."""
    letters = [c for c in text if c.isalpha() or unicodedata.category(c).startswith("M")]
    if not letters:
        return 0.0
    return sum(1 for c in letters if ord(c) in _DEVANAGARI) / len(letters)
