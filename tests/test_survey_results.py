"""Survey results and feedback answers, as coordinators get them (CSV, summary, CLI)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import main
from bot.db.models import Feedback, Message
from bot.runtime import Runtime
from bot.surveys import neutralize, read_book, summarize, write_results_csv
from flows.schema import FlowFiles
from testkit.fake_twilio import FakeTwilio
from tests.support.clock import FakeClock
from tests.support.phone import Phone

FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"]


def take_survey(phone: Phone, other: str) -> None:
    phone.send("SURVEY")
    phone.send("7")
    phone.send(other)
    phone.send("1 3")


def results(runtime: Runtime, **kwargs: object) -> list[dict[str, str]]:
    out = io.StringIO()
    current = read_book(runtime.db, FlowFiles.load()).current["community_assessment"]
    write_results_csv(
        runtime.db,
        "community_assessment",
        out,
        current,
        now=runtime.clock(),
        **kwargs,  # type: ignore[arg-type]
    )
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_csv_has_one_row_per_response_and_neutralizes_formulas(
    client,
    twilio: FakeTwilio,
    runtime: Runtime,  # type: ignore[no-untyped-def]
) -> None:
    for payload in FORMULAS:
        take_survey(Phone(client, twilio), payload)
    rows = results(runtime)
    assert len(rows) == len(FORMULAS)
    assert [r["q_main_issue_other"] for r in rows] == ["'" + p for p in FORMULAS]
    first = rows[0]
    assert (first["survey"], first["version"], first["status"], first["complete"]) == (
        "community_assessment",
        "1",
        "active",
        "no",
    )
    assert first["q_priorities"] == "water;roads" and first["q_main_issue"] == "other"
    assert first["channel"] == "sms" and first["language"] == "en"
    assert first["phone"].startswith("+977")  # our own E.164, not a formula
    assert list(rows[0])[:3] == ["response_id", "survey", "version"]


def test_csv_marks_silent_sessions_expired_and_filters_by_date(
    client,
    twilio: FakeTwilio,
    runtime: Runtime,
    clock: FakeClock,  # type: ignore[no-untyped-def]
) -> None:
    take_survey(Phone(client, twilio), "no bridge")
    clock.advance(3 * 86400)
    take_survey(Phone(client, twilio), "no school")
    rows = results(runtime, ttl=timedelta(hours=24))
    assert [r["status"] for r in rows] == ["expired", "active"]  # nobody told the first one
    since = clock.now - timedelta(days=1)
    assert [r["q_main_issue_other"] for r in results(runtime, since=since)] == ["no school"]


def test_summary_counts_options_and_completion(
    client,
    twilio: FakeTwilio,
    runtime: Runtime,  # type: ignore[no-untyped-def]
) -> None:
    finished = Phone(client, twilio)
    for text in ["SURVEY", "1", "1", "6", "no", "no", "2"]:
        finished.send(text)
    assert finished.send("SKIP")[0].startswith("Thank you!")
    take_survey(Phone(client, twilio), "landslides")
    [summary] = summarize(
        runtime.db, "community_assessment", free_text=frozenset({"main_issue_other"})
    )
    assert (summary.version, summary.responses, summary.completed) == ("1", 2, 1)
    assert summary.completion_rate == 0.5
    assert summary.answers["main_issue"] == {"water": 1, "other": 1}
    assert summary.answers["priorities"] == {"water": 2, "roads": 1}
    assert "main_issue_other" not in summary.answers


def test_neutralize_only_touches_formula_starts() -> None:
    assert neutralize("=1+1") == "'=1+1"
    assert neutralize("\t=1") == "'\t=1"
    assert neutralize("water") == "water"
    assert neutralize("") == ""


def test_neutralize_sees_through_leading_blanks() -> None:
    # Spreadsheets skip blanks before a formula: " =HYPERLINK(...)" runs as one.
    for attack in (" =1+1", "  +1", "\u00a0-2+3", " \t@SUM(A1)", "\r=1", "\n=1", "\t"):
        assert neutralize(attack) == "'" + attack, repr(attack)
    assert neutralize(" water = life") == " water = life"
    assert neutralize("   ") == "   "


def test_cli_results_and_summary(
    client,
    twilio: FakeTwilio,
    runtime: Runtime,
    env: dict[str, str],
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    take_survey(Phone(client, twilio), "=cmd|' /C calc'!A0")
    runner = CliRunner()
    out = tmp_path / "results.csv"
    result = runner.invoke(
        main, ["survey", "results", "community_assessment", "--csv", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0]["q_main_issue_other"] == "'=cmd|' /C calc'!A0"
    summary = runner.invoke(main, ["survey", "summary", "community_assessment"], env=env)
    assert summary.exit_code == 0, summary.output
    assert "1 responses, 0 completed (0%)" in summary.output
    assert "Something else" in summary.output
    bad = runner.invoke(
        main, ["survey", "results", "x", "--since", "yesterday", "--csv", "-"], env=env
    )
    assert bad.exit_code == 2 and "not a date" in bad.output


def test_answering_feedback_reaches_the_person_through_the_outbox(
    client,
    twilio: FakeTwilio,
    runtime: Runtime,
    env: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    phone = Phone(client, twilio)
    phone.send("FEEDBACK <script>alert(1)</script> the school roof leaks")
    phone.send("2")
    phone.send("SKIP")
    with runtime.db.read() as s:
        feedback = s.scalars(select(Feedback)).one()
    runner = CliRunner()
    answered = runner.invoke(
        main, ["feedback", "answer", feedback.reference, "We told the ward office."], env=env
    )
    assert answered.exit_code == 0, answered.output
    runtime.sweep()  # the worker's sweeper (or the queued job) sends it
    [reply] = phone.replies()
    assert reply == f"{feedback.reference}: We told the ward office."
    with runtime.db.read() as s:
        stored = s.scalars(select(Feedback)).one()
        sent = s.scalars(select(Message).where(Message.kind == "feedback_answer")).one()
    assert (stored.status, stored.answer, stored.answered_by) == (
        "answered",
        "We told the ward office.",
        "cli",
    )
    assert sent.status in ("sent", "queued") and sent.provider_sid
    listed = runner.invoke(main, ["feedback", "list"], env=env)
    assert feedback.reference in listed.output and "answered" in listed.output
    missing = runner.invoke(main, ["feedback", "answer", "FB-NOPE00", "hi"], env=env)
    assert missing.exit_code == 1 and "no feedback with reference" in missing.output
    bad_status = runner.invoke(main, ["feedback", "status", feedback.reference, "done"], env=env)
    assert bad_status.exit_code == 1 and "status must be one of" in bad_status.output
