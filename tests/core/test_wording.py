"""Spelling folds, the FAQ's subject and near misses, as people write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.faq import off_subject
from bot.core.wording import (
    asks_not_tells,
    fold,
    mentions_domain,
    mentions_subject,
    near_miss,
    other_words,
)


@pytest.mark.parametrize(
    ("variant", "usual"),
    [
        ("samajik parichalan k xa", "samajik parichalan ke chha"),
        ("samajik parichalan ke cha", "samajik parichalan ke chha"),
        ("parichalan vaneko ke ho", "parichalan bhaneko ke ho"),
        ("kina mahatvapurna hunxa", "kina mahatwapurna hunchha"),
        ("सामाजिक परीचालन", "सामाजिक परिचालन"),
        ("महत्त्वपूर्ण", "महत्वपुर्ण"),
        ("फाईदा", "फाइदा"),
    ],
)
def test_variants_fold_to_one_spelling(variant: str, usual: str) -> None:
    assert fold(variant) == fold(usual)


def test_fold_keeps_english_words_case_and_punctuation() -> None:
    assert fold("How do I form a users committee?") == "How do I form a users committee?"


@pytest.mark.parametrize(
    "text",
    [
        "what does a social mobilizer do",
        "wat dz a socl mobilizr do",
        "social mobilisation meaning",
        "mobilizing a village, where to start",
        "smjk prchln bhnko k ho",
        "saamaajik parichaalan",
        "सामाजिक परिचालकको काम",
        "सामाजिक परीचालन",
        "सोसल मोबिलाइजरले के गर्छ",
    ],
)
def test_the_subject_is_recognised_in_any_script_and_spelling(text: str) -> None:
    assert mentions_subject(text)


@pytest.mark.parametrize(
    "text", ["why is hand washing important", "mobile recharge", "mobility aid", "पानी"]
)
def test_other_subjects_are_not_the_subject(text: str) -> None:
    assert not mentions_subject(text)


@pytest.mark.parametrize(
    ("text", "off"),
    [
        ("what are the steps", False),  # names no subject: on this line, the FAQ's
        ("benefits?", False),
        ("सामाजिक परिचालनका चरणहरू के के हुन्?", False),
        ("what are the steps to register a birth", True),
        ("why is hand washing important", True),
        ("strategies to win at chess", True),
        ("असल नेताका गुणहरू के के हुन्?", True),
        ("what is the salary of a social mobilizer", True),  # near miss: pay
        ("सामाजिक परिचालकको तलब कति हुन्छ", True),
        ("bidhawa bhatta kaile aauchha", True),
        ("सामाजिक सुरक्षा भत्ताको लागि के गर्ने", True),  # the ending taken off
        ("what does a social mobilizer do", False),
    ],
)
def test_off_subject(text: str, off: bool) -> None:
    assert off_subject(text) is off, other_words(text)


def test_near_misses_and_domain_words() -> None:
    assert near_miss("any vacancy for a mobilizer?")
    assert near_miss("how do I apply for the mobilizer post")
    assert not near_miss("what are the duties of a mobilizer")
    assert mentions_domain("how to involve community leaders")
    assert mentions_domain("समुदायका अगुवालाई कसरी संलग्न गराउने")
    assert not mentions_domain("strategies to win at chess")


@pytest.mark.parametrize(
    "text",
    [
        "how can i become a social mobilizer",
        "is there a job for a mobilizer here",
        "any vacancy for community mobiliser",
        "how much does a mobilizer earn",
        "i want to work as a social mobilizer",
        "mobilizer ko jagir",
        "mobilizer ko jaagir kasari paune",
        "parichalak ko talab kati ho",
        "mobilizer ko tlb kati",
        "mobilizer bharna kahile",
        "parichalak pad ma aawedan kaha dine",
        "mobilizer ko lagi awedan",
        "abedan kasari dine",
        "parichalak lai bhatta kati dinchha",
        "mobilizer kasari banne",
        "परिचालक पदमा आवेदन",
        "परिचालकको जागिर",
        "परिचालकको तलब कति हो",
        "परिचालक भर्ना कहिले खुल्छ",
        "परिचालकलाई भत्ता कति",
        "रिक्त पद परिचालक",
        "परिचालक कसरी बन्ने",
    ],
)
def test_jobs_pay_and_allowances_as_people_spell_them_are_near_misses(text: str) -> None:
    assert near_miss(text)


@pytest.mark.parametrize(
    "text",
    [
        "what is the work of the mobilizer in our ward",
        "role of mobilizer in our village",
        "what is the mobilizers job in the community",
        "how does social mobilization work",
        "how to become a good mobilizer",
        "qualities needed to become a mobilizer",
        "asal parichalak kasari banne",
        "असल परिचालक कसरी बन्ने",
        "mobilizer ko kaam k ho",
        "parichalak ko jagir ma dainik ke kaam hunchha",  # the job's work, not getting it
        "परिचालकले कस्तो काम गर्छ",
        "how much does the community benefit from mobilization",
        "is there a mobilizer in our ward",
    ],
)
def test_questions_about_a_mobilizers_work_or_role_are_not_near_misses(text: str) -> None:
    assert not near_miss(text)


@given(st.text(max_size=80))
def test_never_crash_on_any_text(text: str) -> None:
    fold(text)
    off_subject(text)
    asks_not_tells(text)
