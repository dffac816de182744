"""The pure engine, transcript style: question types, skip logic, re-asks, SKIP and QUIT."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.messages import Language
from flows.engine import ACTIVE, COMPLETED, ENDED, QUIT, Session, start, step
from tests.support.flows import T0, Transcript, flow_from, kit, shipped


def assessment() -> Transcript:
    return Transcript(shipped().surveys["community_assessment"])


def test_a_whole_survey_with_both_skip_branches_taken() -> None:
    t = assessment()
    [opening] = t.opening
    assert opening.startswith("Thank you for taking part")
    assert "1) Drinking water" in opening and "Reply with the number" in opening
    assert "Please tell us the problem" in t.send("7")  # other → the follow-up
    assert "Choose up to 3" in t.send("  no street lights ")
    assert "already have" in t.send("1 3")
    assert "active community groups" in t.send("1 2")
    assert "how many" in t.send("yes").lower()
    assert "take part" in t.send("4")
    assert "How would you like to help" in t.send("ho")
    assert "awareness messages" in t.send("1 4")
    assert "Reply SKIP" in t.send("whatsapp")
    end = t.send("SKIP")
    assert end.startswith("Thank you!")
    assert t.session.status == COMPLETED and t.last.event == "completed"
    assert t.session.answers == {
        "main_issue": "other",
        "main_issue_other": "no street lights",
        "priorities": ["water", "roads"],
        "resources": ["meeting_place", "school"],
        "has_groups": "yes",
        "groups_count": 4,
        "willing": "yes",
        "willing_how": ["attend", "spread_word"],
        "channel": "whatsapp",
    }
    assert t.session.skipped == ("best_time",)


def test_conditions_skip_questions_when_they_do_not_hold() -> None:
    t = assessment()
    assert "Choose up to 3" in t.send("pani")  # not "other": no follow-up
    t.send("2")
    assert "active community groups" in t.send("6")
    assert "take part" in t.send("hoina")  # no groups: no count question
    assert "awareness messages" in t.send("no")  # not willing: no "how"
    assert "main_issue_other" not in t.session.answers
    assert "groups_count" not in t.session.answers


def test_in_nepali_with_nepali_digits_and_words() -> None:
    t = Transcript(shipped().surveys["community_assessment"], Language.NE)
    assert "तपाईंको समुदायको सबैभन्दा ठूलो समस्या" in t.opening[0]
    assert "३ वटासम्म" in t.send("२")
    t.send("१ र ४")
    t.send("सबै")
    assert "कतिवटा" in t.send("छ")
    t.send("५ वटा")
    assert "कसरी सघाउन" in t.send("हजुर")
    assert t.session.answers["groups_count"] == 5
    assert t.session.answers["resources"][0] == "meeting_place"


def test_an_unclear_answer_is_asked_again_then_given_up() -> None:
    t = assessment()
    again = t.send("banana")
    assert again.startswith("Sorry, I did not understand")
    assert "What is the biggest problem" in again
    assert t.last.event == "reask" and t.session.reasks == 1
    assert t.send("9").startswith("That number is not one of the choices")
    moved = t.send("still no idea")  # max_reasks: 2 → move on
    assert moved.startswith("Let us move on")
    assert "Choose up to 3" in moved
    assert t.session.skipped == ("main_issue",)
    assert "main_issue" not in t.session.answers


def test_skip_only_works_on_optional_questions_and_quit_keeps_answers() -> None:
    t = assessment()
    refused = t.send("skip")
    assert refused.startswith("This question cannot be skipped")
    assert t.session.question == "main_issue" and t.session.reasks == 0
    t.send("1")
    assert t.send("QUIT").startswith("You left the survey")
    assert t.session.status == QUIT and t.session.question is None
    assert t.session.answers == {"main_issue": "water"}


def test_feedback_end_message_carries_the_reference() -> None:
    flow = shipped().feedback
    assert flow is not None
    first = start(
        flow,
        "f1",
        now=T0,
        language=Language.EN,
        kit=kit(),
        answers={"message": "the tap is broken"},
        extra={"reference": "FB-ABC234"},
    )
    assert "What kind of feedback" in first.messages[0]
    done = step(flow, first.session, "1", now=T0, language=Language.EN, kit=kit())
    assert "Where is this" in done.messages[0]  # the message was given up front
    end = step(flow, done.session, "ward 4", now=T0, language=Language.EN, kit=kit())
    assert "FB-ABC234" in end.messages[0]
    assert end.session.answers == {
        "message": "the tap is broken",
        "category": "complaint",
        "location": "ward 4",
    }


def test_a_flow_whose_questions_are_all_answered_up_front_completes_at_once(
    tmp_path: Path,
) -> None:
    flow = flow_from(
        tmp_path,
        """\
        key: one
        version: 1
        title: {en: One, ne: एक}
        end: {en: Done, ne: सकियो}
        questions:
          - id: note
            type: text
            text: {en: Say something, ne: केही भन्नुहोस्}
        """,
    )
    first = start(flow, "x", now=T0, language=Language.EN, kit=kit(), answers={"note": "hi"})
    assert first.event == "completed" and first.messages == ["Done"]


texts = st.one_of(
    st.sampled_from(
        ["1", "2", "7", "१ ३", "yes", "hoina", "skip", "SKIP", "quit", "all", "5 वटा", "", "?"]
    ),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, max_size=25), st.sampled_from(list(Language)))
def test_any_sequence_of_texts_never_raises_and_never_loses_an_answer(
    inputs: list[str], language: Language
) -> None:
    flow = shipped().surveys["community_assessment"]
    # Between messages the session lives as JSON in the contact row: round-trip it each time.
    stored = json.dumps(start(flow, "p", now=T0, language=language, kit=kit()).session.to_dict())
    for text in inputs:
        session = Session.from_dict(json.loads(stored))
        if session.status in ENDED:
            break
        result = step(flow, session, text, now=T0, language=language, kit=kit())
        after = result.session
        # Waiting on a question that exists, or ended with nothing waiting.
        if after.status == ACTIVE:
            assert after.question is not None and flow.question(after.question)
        else:
            assert after.status in ENDED and after.question is None
        # Every stored answer is still there, unchanged.
        for question, value in session.answers.items():
            assert after.answers[question] == value
        assert result.messages and all(m.strip() for m in result.messages)
        stored = json.dumps(after.to_dict(), ensure_ascii=False)
