"""Surveys and feedback through the whole pipeline: signed webhooks in, replies out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import select

from bot.app import create_app
from bot.db.models import Contact, Feedback, SurveyResponse, SurveyVersion
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from flows.located import locate
from flows.schema import FlowFiles, parse_flow
from testkit.fake_rasa import FakeRasa
from testkit.fake_twilio import FakeTwilio
from tests.support.clock import FakeClock
from tests.support.phone import Phone


def responses(runtime: Runtime) -> list[SurveyResponse]:
    with runtime.db.read() as s:
        return list(s.scalars(select(SurveyResponse).order_by(SurveyResponse.id)))


def test_survey_in_romanized_nepali_from_start_to_end(phone: Phone, runtime: Runtime) -> None:
    [first] = phone.send("sarvekshan")
    assert "सबैभन्दा ठूलो समस्या" in first  # romanized Nepali → Nepali questions
    assert "३ वटासम्म" in phone.send("pani")[0]
    phone.send("1 2")
    phone.send("sabai")
    assert "कतिवटा" in phone.send("cha")[0]
    phone.send("3")
    phone.send("hoina")  # not willing: no follow-up
    phone.send("whatsapp")
    [end] = phone.send("2")
    assert end.startswith("धन्यवाद!")
    [row] = responses(runtime)
    assert (row.survey_key, row.version, row.status, row.language, row.channel) == (
        "community_assessment",
        "1",
        "completed",
        "ne",
        "sms",
    )
    assert row.answers["priorities"] == ["water", "sanitation"]
    assert row.answers["groups_count"] == 3 and row.completed_at is not None
    [again] = phone.send("सर्वेक्षण")
    assert "पूरा गरिसक्नुभएको" in again  # not asked twice


def test_every_answer_is_saved_as_it_is_given(phone: Phone, runtime: Runtime) -> None:
    phone.send("SURVEY")
    phone.send("2")
    [row] = responses(runtime)
    assert (row.status, row.answers) == ("active", {"main_issue": "roads"})
    phone.send("1")
    assert responses(runtime)[0].answers == {"main_issue": "roads", "priorities": ["water"]}


def test_stop_mid_survey_opts_out_and_keeps_the_answers(phone: Phone, runtime: Runtime) -> None:
    phone.send("SURVEY")
    phone.send("1")
    [confirmation] = phone.send("रोक")
    assert "सुरु" in confirmation
    assert phone.send("2") == []
    [row] = responses(runtime)
    assert (row.status, row.answers) == ("stopped", {"main_issue": "water"})
    assert phone.send("START")
    [menu] = phone.send("2")  # the survey is over: "2" is no longer an answer
    assert "Choose up to 3" not in menu


def test_help_and_lang_mid_survey_answer_then_repeat_the_question(phone: Phone) -> None:
    phone.send("SURVEY")
    menu, reminder = phone.send("HELP")
    assert "SURVEY" in menu
    assert "QUIT" in reminder and "What is the biggest problem" in reminder
    switched, question = phone.send("LANG")
    assert "नेपालीमा" in switched
    assert "सबैभन्दा ठूलो समस्या" in question
    assert "३ वटासम्म" in phone.send("१")[0]


def test_skip_and_quit(phone: Phone, runtime: Runtime) -> None:
    phone.send("survey")
    [refused] = phone.send("skip")
    assert refused.startswith("This question cannot be skipped")
    [left] = phone.send("quit")
    assert "You left the survey" in left
    assert responses(runtime)[0].status == "quit"
    [restarted] = phone.send("SURVEY")  # quitting does not count as done
    assert "biggest problem" in restarted
    assert len(responses(runtime)) == 2


def test_a_faq_question_mid_survey_is_answered_then_the_question_repeats(
    member: Phone, rasa: FakeRasa, nlu_runtime: Runtime
) -> None:
    member.send("SURVEY")
    rasa.answers["what are the steps"] = [("faq_steps", 0.93), ("faq_meaning", 0.02)]
    answer, reminder = member.send("what are the steps")
    assert answer.startswith("Steps:")
    assert "What is the biggest problem" in reminder
    assert responses(nlu_runtime)[0].answers == {}
    member.send("7")  # other → free text follow-up
    rasa.answers["what is social mobilization?"] = [("faq_meaning", 0.95)]
    answer, reminder = member.send("what is social mobilization?")
    assert answer.startswith("Social mobilization")
    assert "Please tell us the problem" in reminder
    rasa.answers["no clean water?"] = [("faq_meaning", 0.6), ("faq_steps", 0.1)]
    [next_question] = member.send("no clean water?")  # not sure enough: it is the answer
    assert "Choose up to 3" in next_question
    assert responses(nlu_runtime)[0].answers["main_issue_other"] == "no clean water?"


def test_surveys_work_while_rasa_is_down(
    member: Phone, rasa: FakeRasa, nlu_runtime: Runtime
) -> None:
    rasa.status = 503
    member.send("SURVEY")
    assert "Choose up to 3" in member.send("1")[0]
    assert "Sorry, I did not understand" in member.send("what is this?")[0]


def test_a_silent_session_expires_and_keeps_its_answers(
    phone: Phone, runtime: Runtime, clock: FakeClock
) -> None:
    phone.send("SURVEY")
    phone.send("1")
    clock.advance(25 * 3600)
    [note] = phone.send("2")  # meant for the survey, which has expired
    assert "timed out" in note
    [row] = responses(runtime)
    assert (row.status, row.answers) == ("expired", {"main_issue": "water"})
    assert "biggest problem" in phone.send("SURVEY")[0]


def test_a_survey_resumes_after_a_restart(
    settings: Settings, runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    phone = Phone(create_app(settings, runtime).test_client(), twilio)
    phone.send("SURVEY")
    phone.send("2")
    runtime.close()
    restarted = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    try:
        phone.client = create_app(settings, restarted).test_client()
        assert "already have" in phone.send("1 2")[0]
        assert responses(restarted)[0].answers == {
            "main_issue": "roads",
            "priorities": ["water", "sanitation"],
        }
    finally:
        restarted.close()


def test_changing_the_survey_file_mid_survey_makes_a_new_version(
    settings: Settings, runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    early = Phone(create_app(settings, runtime).test_client(), twilio)
    early.send("SURVEY")
    early.send("1")
    runtime.close()

    files = FlowFiles.load()
    survey = files.surveys["community_assessment"]
    source = dict(survey.source)  # the file edited in place, its version: left at 1
    source["questions"] = [q for q in source["questions"] if q["id"] != "priorities"]
    edited = parse_flow(locate(source), Path("community_assessment.yml"))
    changed = dataclasses.replace(files, surveys={"community_assessment": edited})
    restarted = Runtime(
        settings, huey=make_huey(settings, immediate=True), clock=clock, flow_files=changed
    )
    try:
        client = create_app(settings, restarted).test_client()
        early.client = client
        # The early respondent finishes on the version they started: priorities still comes.
        assert "already have" in early.send("1")[0]
        late = Phone(client, twilio)
        [first] = late.send("SURVEY")
        assert "biggest problem" in first
        assert "already have" in late.send("2")[0]  # no priorities question in 1.1
        rows = responses(restarted)
        assert [(r.version, r.answers) for r in rows] == [
            ("1", {"main_issue": "water", "priorities": ["water"]}),
            ("1.1", {"main_issue": "roads"}),
        ]
        with restarted.db.read() as s:
            versions = s.scalars(
                select(SurveyVersion.version)
                .where(SurveyVersion.survey_key == "community_assessment")
                .order_by(SurveyVersion.id)
            ).all()
        assert versions == ["1", "1.1"]
    finally:
        restarted.close()


def test_feedback_with_the_message_up_front_gets_a_reference(
    phone: Phone, runtime: Runtime
) -> None:
    [category] = phone.send("FEEDBACK the tap in ward 3 has been broken for a week")
    assert "What kind of feedback" in category
    [where] = phone.send("complaint")
    assert "Where is this" in where
    [thanks] = phone.send("Ward 3, Khalanga")
    with runtime.db.read() as s:
        [feedback] = s.scalars(select(Feedback)).all()
    assert feedback.reference in thanks
    assert (feedback.category, feedback.body, feedback.location, feedback.status) == (
        "complaint",
        "the tap in ward 3 has been broken for a week",
        "Ward 3, Khalanga",
        "new",
    )


def test_feedback_in_nepali_step_by_step_with_location_skipped(
    phone: Phone, runtime: Runtime
) -> None:
    [category] = phone.send("प्रतिक्रिया")
    assert "कस्तो प्रतिक्रिया" in category
    [message] = phone.send("हल्ला")
    assert "एउटै सन्देशमा" in message
    phone.send("खोप लगाएपछि बाँझोपन हुन्छ भन्ने हल्ला छ")
    [thanks] = phone.send("अर्को")
    with runtime.db.read() as s:
        [feedback] = s.scalars(select(Feedback)).all()
    assert feedback.reference in thanks and thanks.startswith("धन्यवाद")
    assert (feedback.category, feedback.location, feedback.language) == ("rumour", None, "ne")


def test_nlu_intents_start_the_survey_and_the_feedback_flow(member: Phone, rasa: FakeRasa) -> None:
    rasa.answers["i want to give my opinion"] = [("give_feedback", 0.9)]
    assert "What kind of feedback" in member.send("i want to give my opinion")[0]
    member.send("QUIT")
    rasa.answers["can i take the survey"] = [("start_survey", 0.88)]
    assert "biggest problem" in member.send("can i take the survey")[0]


def test_whatsapp_responses_record_the_channel(  # type: ignore[no-untyped-def]
    client, twilio: FakeTwilio, runtime: Runtime
) -> None:
    phone = Phone(client, twilio, whatsapp=True)
    phone.send("SURVEY")
    phone.send("1")
    [row] = responses(runtime)
    assert row.channel == "whatsapp"
    with runtime.db.read() as s:
        contact = s.scalars(select(Contact)).one()
    assert contact.state is not None and contact.state["session"]["answers"] == {
        "main_issue": "water"
    }


def test_an_invitation_starts_the_survey_and_replies_continue_it(
    phone: Phone, runtime: Runtime
) -> None:
    phone.send("नमस्ते")  # a known contact, last spoken to in Nepali
    with runtime.db.read() as s:
        contact_id = s.scalars(select(Contact.id)).one()
    assert runtime.invite(contact_id) == "started"
    [question] = phone.replies()
    assert "सबैभन्दा ठूलो समस्या" in question
    assert runtime.invite(contact_id) == "busy"
    assert "३ वटासम्म" in phone.send("1")[0]
    phone.send("STOP")
    assert runtime.invite(contact_id) == "opted_out"
    assert runtime.invite(contact_id, "no_such_survey") == "no_survey"
    assert runtime.invite(contact_id + 1000) == "unknown"
    assert phone.replies() == []


def test_feedback_text_with_a_question_mark_is_feedback_not_a_faq_question(
    member: Phone, rasa: FakeRasa, nlu_runtime: Runtime
) -> None:
    member.send("FEEDBACK")
    member.send("3")
    rasa.answers["what are the steps?"] = [("faq_steps", 0.97)]
    [where] = member.send("what are the steps?")
    assert "Where is this" in where
    assert "what are the steps?" not in rasa.calls
