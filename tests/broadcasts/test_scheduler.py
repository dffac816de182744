"""The scheduler: one active process, jobs that follow the broadcasts table, real firing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from bot.broadcasts.scheduler import JOB_PREFIX, BroadcastScheduler, SchedulerLock
from bot.broadcasts.service import Draft, cancel, confirm, create
from bot.db.models import BroadcastRun, utcnow
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import add_contact


@pytest.fixture
def live_runtime(env: dict[str, str]) -> Iterator[Runtime]:
    """The service on the real clock (APScheduler keeps real time), unpaced, no quiet hours."""
    settings = Settings.from_mapping(
        env | {"BROADCAST_PACE": "sms=0,whatsapp=0", "QUIET_HOURS": "off"}
    )
    rt = Runtime(settings, huey=make_huey(settings, immediate=True))
    with rt.db.begin() as conn:  # APScheduler's own table may hold another test's jobs
        conn.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
    yield rt
    rt.close()


def test_only_one_holder_of_the_scheduler_lock(database_url: str) -> None:
    first, second = SchedulerLock(database_url), SchedulerLock(database_url)
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_reconcile_follows_the_table(live_runtime: Runtime) -> None:
    add_contact(live_runtime.db)
    every = create(
        live_runtime.broadcasts,
        Draft(
            "Ward meeting",
            "Meeting on Sunday",
            "आइतबार बैठक",
            schedule="recurring",
            every="sun 08:00",
        ),
        created_by="c@example.org",
    )
    later = create(
        live_runtime.broadcasts,
        Draft(
            "Camp",
            "Camp tomorrow",
            "भोलि शिविर",
            schedule="once",
            send_at=utcnow() + timedelta(days=1),
        ),
        created_by="c@example.org",
    )
    draft_only = create(
        live_runtime.broadcasts, Draft("Draft", "x", "y"), created_by="c@example.org"
    )
    assert confirm(live_runtime.broadcasts, every) == "scheduled"
    assert confirm(live_runtime.broadcasts, later) == "scheduled"
    scheduler = BroadcastScheduler(live_runtime.broadcasts)
    scheduler.start()
    try:
        assert scheduler.reconcile() == 2
        assert scheduler.scheduler is not None
        jobs = {job.id: job for job in scheduler.scheduler.get_jobs()}
        assert set(jobs) == {f"{JOB_PREFIX}{every}", f"{JOB_PREFIX}{later}"}
        assert "day_of_week='sun'" in str(jobs[f"{JOB_PREFIX}{every}"].trigger)
        assert scheduler.reconcile() == 0  # nothing changed
        cancel(live_runtime.broadcasts, later)
        scheduler.reconcile()
        assert [job.id for job in scheduler.scheduler.get_jobs()] == [f"{JOB_PREFIX}{every}"]
        assert draft_only
    finally:
        scheduler.stop()


def test_two_schedulers_fire_a_broadcast_once(live_runtime: Runtime, twilio: FakeTwilio) -> None:
    for _ in range(3):
        add_contact(live_runtime.db)
    broadcast_id = create(
        live_runtime.broadcasts,
        Draft(
            "Soon",
            "Flood warning: move to high ground",
            "बाढीको चेतावनी",
            schedule="once",
            send_at=utcnow() + timedelta(seconds=1.5),
        ),
        created_by="c@example.org",
    )
    confirm(live_runtime.broadcasts, broadcast_id)
    stop = threading.Event()
    schedulers = [BroadcastScheduler(live_runtime.broadcasts, poll_seconds=0.2) for _ in range(2)]
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in schedulers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 15
        while len(twilio.sent) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a second firing would show up by now
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert sorted(c.form["Body"] for c in twilio.sent) == ["Flood warning: move to high ground"] * 3
    with live_runtime.db.read() as s:
        runs = s.scalars(select(BroadcastRun)).all()
    assert len(runs) == 1 and runs[0].status == "done"
    assert sum(s.scheduler is not None for s in schedulers) == 1  # one became active
