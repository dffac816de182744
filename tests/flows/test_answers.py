"""Answers as people type them: digits, Nepali digits, words in three forms, typos."""

from __future__ import annotations

import pytest

from flows.answers import Invalid, edit_distance, parse_answer
from flows.schema import Answer
from tests.support.flows import kit, shipped


def answer(question_id: str, text: str, survey: str = "community_assessment") -> Answer | Invalid:
    question = shipped().surveys[survey].question(question_id)
    return parse_answer(text, question, kit().vocabulary)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "water"),
        ("१", "water"),
        (" 2. ", "roads"),
        ("option 3", "health"),
        ("३ नम्बर", "health"),
        ("no. 5", "livelihood"),
        ("Drinking water", "water"),
        ("खानेपानी", "water"),
        ("khane pani", "water"),
        ("pani", "water"),
        ("sadak", "roads"),
        ("बाढी पहिरो", "disaster"),
        ("the hospital is far", "health"),
        ("drinkng watr", "water"),  # typos
        ("rojgaar", "livelihood"),
        ("shiksa", "education"),
        ("अरू", "other"),
    ],
)
def test_single_choice(text: str, expected: str) -> None:
    assert answer("main_issue", text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("9", "out_of_range"),
        ("0", "out_of_range"),
        ("1 2", "too_many"),
        ("water and roads", "too_many"),
        ("banana", "not_understood"),
        ("", "empty"),
        ("!!!", "empty"),
    ],
)
def test_single_choice_refusals(text: str, reason: str) -> None:
    assert answer("main_issue", text) == Invalid(reason)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 3", ["water", "roads"]),
        ("1,3", ["water", "roads"]),
        ("3, 1", ["water", "roads"]),
        ("1 and 3", ["water", "roads"]),
        ("13", ["water", "roads"]),
        ("१ ३", ["water", "roads"]),
        ("१ र ३", ["water", "roads"]),
        ("pani ra sadak", ["water", "roads"]),
        ("toilet, school", ["sanitation", "education"]),
        ("2", ["sanitation"]),
        ("1 1 1", ["water"]),
    ],
)
def test_multiple_choice(text: str, expected: list[str]) -> None:
    assert answer("priorities", text) == expected


def test_multiple_choice_limits_and_all() -> None:
    assert answer("priorities", "1 2 3 4") == Invalid("too_many")  # max_choices: 3
    assert answer("priorities", "1 9") == Invalid("out_of_range")
    assert answer("priorities", "1 banana") == Invalid("not_understood")
    assert answer("resources", "sabai") == [
        "meeting_place",
        "school",
        "health_post",
        "savings_group",
        "volunteers",
        "nothing",
    ]
    assert answer("resources", "none of these") == ["nothing"]


@pytest.mark.parametrize(
    "text", ["yes", "Y", "Yes!", "yess", "ho", "हो", "हजुर", "hajur", "huncha", "छ", "ok", "1"]
)
def test_yes_in_every_form(text: str) -> None:
    assert answer("has_groups", text) == "yes"


@pytest.mark.parametrize(
    "text", ["no", "NO.", "nope", "hoina", "होइन", "haina", "हैन", "छैन", "chaina", "2", "noo"]
)
def test_no_in_every_form(text: str) -> None:
    assert answer("has_groups", text) == "no"


@pytest.mark.parametrize("text", ["maybe", "yes no", "5", ""])
def test_neither_yes_nor_no(text: str) -> None:
    assert isinstance(answer("has_groups", text), Invalid)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4", 4), ("४", 4), ("about 12", 12), ("५ वटा", 5), ("tin", 3), ("three", 3), ("100", 100)],
)
def test_numbers(text: str, expected: int) -> None:
    assert answer("groups_count", text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "out_of_range"),
        ("101", "out_of_range"),
        ("many", "not_understood"),
        ("3 4", "too_many"),
    ],
)
def test_number_refusals(text: str, reason: str) -> None:
    assert answer("groups_count", text) == Invalid(reason)


def test_free_text_is_kept_as_typed_with_spacing_folded() -> None:
    assert answer("main_issue_other", "  no  street lights \n at night ") == (
        "no street lights at night"
    )
    assert answer("main_issue_other", "x" * 301) == Invalid("too_long")
    assert answer("main_issue_other", "   ") == Invalid("empty")


def test_edit_distance_is_bounded() -> None:
    assert edit_distance("water", "watr", 1) == 1
    assert edit_distance("water", "road", 1) == 2
    assert edit_distance("kitten", "sitting", 5) == 3
