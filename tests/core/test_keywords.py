"""Keywords in English, Nepali (Devanagari) and romanized Nepali, and language guessing."""

from __future__ import annotations

import pytest

from bot.core.content import Content
from bot.core.keywords import detect_language, match_keyword
from bot.core.messages import Language
from bot.core.text import normalize


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop!",
        " stop. ",
        "STÓP",
        "unsubscribe",
        "CANCEL",
        "बन्द",
        "बन्द।",
        "रोक",
        "band",
        "BAND",
        "banda",
        "band garnus",
        "stop please",
        "\u200bstop",
        "रोक्नुहोस्",
    ],
)
def test_opt_out_words(text: str, content: Content) -> None:
    match = match_keyword(text, content.keywords)
    assert match is not None and match.action == "opt_out"


@pytest.mark.parametrize("text", ["START", "start", "Join", "सुरु", "suru", "shuru", "unstop"])
def test_opt_in_words(text: str, content: Content) -> None:
    match = match_keyword(text, content.keywords)
    assert match is not None and match.action == "opt_in"


@pytest.mark.parametrize("text", ["HELP", "menu", "मद्दत", "madat", "help me"])
def test_help_words(text: str, content: Content) -> None:
    match = match_keyword(text, content.keywords)
    assert match is not None and match.action == "help"


@pytest.mark.parametrize(
    ("text", "argument"),
    [
        ("LANG", None),
        ("भाषा", None),
        ("bhasa", None),
        ("lang ne", Language.NE),
        ("LANG English", Language.EN),
        ("भाषा नेपाली", Language.NE),
    ],
)
def test_language_words(text: str, argument: Language | None, content: Content) -> None:
    match = match_keyword(text, content.keywords)
    assert match is not None and match.action == "language" and match.argument == argument


@pytest.mark.parametrize(
    "text",
    [
        "how do I stop the flooding in my ward",
        "what is social mobilization",
        "bandh",
        "",
        "   ",
        "🙂",
        "stopwatch",
        "the band played at the meeting today",
    ],
)
def test_ordinary_text_is_not_a_keyword(text: str, content: Content) -> None:
    assert match_keyword(text, content.keywords) is None


def test_normalize_keeps_devanagari_vowel_signs() -> None:
    assert normalize("सुरु") == "सुरु"
    assert normalize("Café") == "cafe"
    assert normalize("१२३") == "123"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("what is social mobilization", Language.EN),
        ("सामाजिक परिचालन भनेको के हो", Language.NE),
        ("samajik parichalan bhaneko k ho", Language.NE),
        ("mero gaun ma meeting kahile cha", Language.NE),
        ("12345", None),
        ("", None),
    ],
)
def test_detect_language(text: str, language: Language | None, content: Content) -> None:
    assert detect_language(text, content) == language
