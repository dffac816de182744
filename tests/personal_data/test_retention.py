"""Retention: old bodies, answers and feedback text go; counts and delivery figures stay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from bot.broadcasts.scheduler import RETENTION_JOB, BroadcastScheduler, sweep_retention
from bot.cli import main
from bot.db.models import AuditEvent, Contact, Feedback, Message, SurveyResponse, utcnow
from bot.personal_data.retention import sweep
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError
from bot.surveys import response_count, summarize
from testkit.fake_twilio import FakeTwilio
from tests.support.clock import FakeClock
from tests.support.phone import Phone

DAY = 86400
SURVEY = "community_assessment"


@pytest.fixture
def thirty_days(env: dict[str, str]) -> Settings:
    return Settings.from_mapping(env | {"RETENTION_DAYS": "30"})


def figures(runtime: Runtime, number: str) -> list[tuple[object, ...]]:
    """What retention must keep of a person's messages: everything but the text."""
    with runtime.db.read() as s:
        return [
            tuple(row)
            for row in s.execute(
                select(
                    Message.id,
                    Message.direction,
                    Message.status,
                    Message.segments,
                    Message.kind,
                    Message.intent,
                    Message.created_at,
                )
                .join(Contact)
                .where(Contact.phone == number)
                .order_by(Message.id)
            )
        ]


def bodies(runtime: Runtime, number: str) -> list[str]:
    with runtime.db.read() as s:
        return list(
            s.scalars(
                select(Message.body)
                .join(Contact)
                .where(Contact.phone == number)
                .order_by(Message.id)
            )
        )


def test_sweep_blanks_what_is_older_than_the_cutoff_and_keeps_the_figures(
    client,  # type: ignore[no-untyped-def]
    twilio: FakeTwilio,
    runtime: Runtime,
    clock: FakeClock,
    thirty_days: Settings,
) -> None:
    old = Phone(client, twilio)
    old.send("FEEDBACK the bridge in ward 2 is cracked")
    old.send("complaint")
    old.send("Ward 2, near the temple")
    old.send("SURVEY")
    old.send("7")
    old.send("our own words about the road")
    old.send("1 3")  # left unfinished: the session stays in the contact's state
    before = figures(runtime, old.number)
    [summary_before] = summarize(runtime.db, SURVEY)
    with runtime.db.write() as s:  # an outbound message that will still be waiting to go
        contact_id = s.scalars(select(Contact.id).where(Contact.phone == old.number)).one()
        waiting = Message(
            contact_id=contact_id, direction="out", channel="sms", body="still to send",
            status="pending", attempts=0, num_media=0, allow_opted_out=False,
            created_at=clock.now, updated_at=clock.now,
        )  # fmt: skip
        s.add(waiting)
    clock.advance(40 * DAY)
    new = Phone(client, twilio)
    new.send("SURVEY")
    new.send("2")

    report = sweep(runtime.db, thirty_days, clock())

    assert report.messages == len(before) and report.responses == 2 and report.feedback == 1
    assert report.sessions == 1
    assert figures(runtime, old.number)[: len(before)] == before  # counts, statuses, times
    assert bodies(runtime, old.number) == [""] * len(before) + ["still to send"]
    assert all(bodies(runtime, new.number))  # newer than the cutoff: untouched
    with runtime.db.read() as s:
        feedback = s.scalars(select(Feedback)).one()
        responses = s.scalars(select(SurveyResponse).order_by(SurveyResponse.id)).all()
        state = s.scalars(select(Contact.state).where(Contact.phone == old.number)).one()
    assert (feedback.body, feedback.location, feedback.category) == ("", None, "complaint")
    assert [r.answers == {} for r in responses] == [True, True, False]
    assert responses[0].redacted_at == clock.now and responses[1].status == "active"
    assert not (state or {}).get("session")
    # The survey's results count exactly what they counted before, the new answer added.
    [summary] = summarize(runtime.db, SURVEY)
    assert summary.responses == summary_before.responses + 1
    assert summary.answers["main_issue"]["other"] == 1
    assert summary.answers["main_issue"]["roads"] == 1
    assert summary.answers["priorities"] == summary_before.answers["priorities"]
    assert response_count(runtime.db, SURVEY) == 2

    # The next sweep starts where this one stopped, and finds nothing new.
    again = sweep(runtime.db, thirty_days, clock())
    assert (again.messages, again.responses, again.feedback, again.sessions) == (0, 0, 0, 0)
    # The waiting message holds the watermark: later sweeps look at it again.
    assert again.through_id == report.through_id == waiting.id - 1
    with runtime.db.read() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == "retention_sweep")) == 2


def test_sweep_moves_on_in_batches_and_later_days(
    client,  # type: ignore[no-untyped-def]
    twilio: FakeTwilio,
    runtime: Runtime,
    clock: FakeClock,
    thirty_days: Settings,
) -> None:
    phones = [Phone(client, twilio) for _ in range(3)]
    for n, phone in enumerate(phones):
        phone.send(f"hello number {n}")
        clock.advance(10 * DAY)
    clock.advance(15 * DAY)  # the first is 45 days old, the second 35, the third 25
    first = sweep(runtime.db, thirty_days, clock(), batch=1)
    assert first.messages == 4  # two people, a message and its reply each
    assert [bool(b[0]) for b in (bodies(runtime, p.number) for p in phones)] == [
        False,
        False,
        True,
    ]
    clock.advance(10 * DAY)
    assert sweep(runtime.db, thirty_days, clock(), batch=1).messages == 2
    assert not any(bodies(runtime, phones[2].number))


def test_retention_off_by_default_and_its_setting_and_command(
    env: dict[str, str],
    runtime: Runtime,
    clock: FakeClock,
    client,  # type: ignore[no-untyped-def]
    twilio: FakeTwilio,
) -> None:
    assert Settings.from_mapping(env).retention_days == 0
    assert Settings.from_mapping(env | {"RETENTION_DAYS": "off"}).retention_days == 0
    for bad in ("-1", "ninety", "1.5"):
        with pytest.raises(SettingsError, match="RETENTION_DAYS"):
            Settings.from_mapping(env | {"RETENTION_DAYS": bad})
    with pytest.raises(SettingsError, match="PHONE_HASH_KEY"):
        Settings.from_mapping(env | {"PHONE_HASH_KEY": "short"})
    assert sweep(runtime.db, runtime.settings, clock()).cutoff is None
    phone = Phone(client, twilio)
    phone.send("an old message")
    result = CliRunner().invoke(main, ["retention", "sweep", "--days", "1"], env=env)
    assert result.exit_code == 0, result.output
    # The command runs on the real clock; the test's messages are from the fake clock's day.
    swept = 2 if utcnow() - timedelta(days=1) > clock.now else 0
    assert f"{swept} message bodies" in result.output
    clock.advance(2 * DAY)
    assert sweep(runtime.db, runtime.settings, clock(), days=1).messages == 2 - swept
    assert bodies(runtime, phone.number) == ["", ""]


@pytest.fixture
def scheduler_runtime(thirty_days: Settings, clock: FakeClock) -> Iterator[Runtime]:
    rt = Runtime(thirty_days, huey=make_huey(thirty_days, immediate=True), clock=clock)
    with rt.db.begin() as conn:  # APScheduler's own table may hold another test's jobs
        conn.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
    yield rt
    rt.close()


def test_the_active_scheduler_runs_the_sweep_daily(
    scheduler_runtime: Runtime, env: dict[str, str], clock: FakeClock
) -> None:
    scheduler = BroadcastScheduler(scheduler_runtime.broadcasts)
    scheduler.start()
    try:
        assert scheduler.scheduler is not None
        job = scheduler.scheduler.get_job(RETENTION_JOB)
        assert job is not None and job.misfire_grace_time is None
        assert "hour='3'" in str(job.trigger)
        assert scheduler.reconcile() == 0 and scheduler.scheduler.get_job(RETENTION_JOB)
        sweep_retention()  # what APScheduler calls at 03:17 local time
        with scheduler_runtime.db.read() as s:
            detail = s.scalars(
                select(AuditEvent.detail).where(AuditEvent.action == "retention_sweep")
            ).one()
        assert detail is not None and detail["days"] == 30
        # Retention turned off: the next active scheduler removes the job.
        off = Runtime(
            Settings.from_mapping(env),
            huey=make_huey(scheduler_runtime.settings, immediate=True),
            clock=clock,
        )
        scheduler.ports = off.broadcasts
        scheduler.schedule_retention()
        assert scheduler.scheduler.get_job(RETENTION_JOB) is None
        off.close()
    finally:
        scheduler.stop()
