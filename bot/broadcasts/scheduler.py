"""The broadcast scheduler: APScheduler decides when, the job queue does the work.

Broadcasts and their schedules are rows; every few seconds the active scheduler makes its
APScheduler jobs (kept in the database by APScheduler's SQLAlchemy job store, with
coalescing and a misfire grace time) match the scheduled broadcasts. When a job fires, the
occurrence's run is created (once per broadcast and time: a unique row) and planned by a
worker. Start as many `bot scheduler` processes as you like: a database lock (a PostgreSQL
advisory lock, or a lock file beside the SQLite database) lets exactly one be active; the
others wait and take over when it stops.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Connection, make_url

from bot.broadcasts.ports import BroadcastPorts
from bot.broadcasts.service import SCHEDULED, expire_drafts, occurrence, start_run
from bot.db.models import Broadcast

log = logging.getLogger(__name__)

LOCK_KEY = 0x6272_6F61_6463  # "broadc": the advisory lock's number
JOB_PREFIX = "broadcast-"
RETENTION_JOB = "retention-sweep"  # not a broadcast job: reconcile leaves it alone

# The ports the active scheduler fires jobs with (APScheduler stores a function reference).
_ACTIVE: BroadcastPorts | None = None


class SchedulerLock:
    """Exactly one holder per database, released when the holder stops or dies."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._conn: Connection | None = None
        self._file: int | None = None

    def acquire(self) -> bool:
        """Takes the lock if it is free; never waits."""
        url = make_url(self.url)
        if url.get_backend_name() == "postgresql":
            engine = create_engine(self.url, pool_size=1, max_overflow=0, hide_parameters=True)
            conn = engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
            engine.dispose()
            return False
        # SQLite lives on one machine: a lock file beside the database file is its lock.
        path = Path(url.database or "bot.db").with_suffix(".scheduler.lock")
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            engine = self._conn.engine
            self._conn.close()
            engine.dispose()
            self._conn = None
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            os.close(self._file)
            self._file = None


def fire(broadcast_id: int) -> None:
    """APScheduler's job: start the run for the occurrence that is due."""
    ports = _ACTIVE
    if ports is None:
        log.error("broadcast %s fired with no active scheduler", broadcast_id)
        return
    with ports.db.read() as session:
        row = session.get(Broadcast, broadcast_id)
    if row is None or row.status != SCHEDULED:
        return
    when = occurrence(row, ports.clock())
    run_id = start_run(ports, broadcast_id, when)
    log.info("broadcast %s fired for %s: run %s", broadcast_id, when.isoformat(), run_id)


def sweep_retention() -> None:
    """APScheduler's daily job: blank what is older than RETENTION_DAYS (issue 12)."""
    from bot.personal_data.retention import sweep

    ports = _ACTIVE
    if ports is None:
        log.error("retention sweep fired with no active scheduler")
        return
    sweep(ports.db, ports.settings, ports.clock())


def trigger_for(row: Broadcast) -> Any:
    """The APScheduler trigger of a scheduled broadcast, or None."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(row.timezone)
    if row.schedule == "once" and row.send_at is not None:
        return DateTrigger(run_date=row.send_at, timezone=zone)
    if row.schedule == "recurring" and row.cron:
        return CronTrigger.from_crontab(row.cron, timezone=zone)
    return None


class BroadcastScheduler:
    """Waits for the lock, then keeps APScheduler's jobs in step with the broadcasts table."""

    def __init__(self, ports: BroadcastPorts, poll_seconds: float = 5.0) -> None:
        self.ports = ports
        self.poll_seconds = poll_seconds
        self.lock = SchedulerLock(ports.settings.database_url)
        self.scheduler: BackgroundScheduler | None = None
        self.jobstore: SQLAlchemyJobStore | None = None

    def stop(self) -> None:
        """Stops APScheduler and closes its database connections."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.jobstore is not None:
            self.jobstore.engine.dispose()

    def start(self) -> None:
        """Starts APScheduler (call only while holding the lock)."""
        global _ACTIVE
        _ACTIVE = self.ports
        settings = self.ports.settings
        self.jobstore = SQLAlchemyJobStore(url=settings.database_url, tablename="apscheduler_jobs")
        self.scheduler = BackgroundScheduler(
            jobstores={"default": self.jobstore},
            job_defaults={
                "coalesce": True,
                "misfire_grace_time": settings.misfire_grace_seconds,
                "max_instances": 1,
            },
            timezone=settings.zone,
        )
        self.scheduler.start()
        self.schedule_retention()

    def schedule_retention(self) -> None:
        """The daily retention sweep (RETENTION_DAYS), on the active scheduler only.

        It runs late rather than never: a scheduler that was down at the hour sweeps as soon
        as it is active again (no misfire limit; missed days coalesce into one run).
        """
        assert self.scheduler is not None
        if self.ports.settings.retention_days <= 0:
            if self.scheduler.get_job(RETENTION_JOB) is not None:
                self.scheduler.remove_job(RETENTION_JOB)
            return
        self.scheduler.add_job(
            sweep_retention,
            CronTrigger(hour=3, minute=17, timezone=self.ports.settings.zone),
            id=RETENTION_JOB,
            name="retention sweep",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def reconcile(self) -> int:
        """Adds, changes and removes jobs so they match the scheduled broadcasts."""
        assert self.scheduler is not None
        with self.ports.db.read() as session:
            rows = list(
                session.scalars(
                    select(Broadcast).where(
                        Broadcast.status == SCHEDULED,
                        Broadcast.schedule.in_(("once", "recurring")),
                    )
                )
            )
        wanted = {f"{JOB_PREFIX}{row.id}": row for row in rows}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
                job.remove()
        changed = 0
        for job_id, row in wanted.items():
            trigger = trigger_for(row)
            if trigger is None:
                continue
            job = self.scheduler.get_job(job_id)
            if job is not None and str(job.trigger) == str(trigger):
                continue
            self.scheduler.add_job(
                fire, trigger, id=job_id, args=[row.id], replace_existing=True, name=row.title
            )
            changed += 1
        return changed

    def run(self, stop: threading.Event) -> None:
        """Blocks until `stop` is set: waits for the lock, then schedules."""
        while not stop.is_set() and not self.lock.acquire():
            log.info("another scheduler is active; standing by")
            stop.wait(self.poll_seconds)
        if stop.is_set():
            return
        log.info("this scheduler is active")
        try:
            self.start()
            while not stop.is_set():
                try:
                    self.reconcile()
                    expire_drafts(self.ports)
                except Exception:
                    log.exception("could not reconcile broadcast schedules; retrying")
                stop.wait(self.poll_seconds)
        finally:
            self.stop()
            self.lock.release()
