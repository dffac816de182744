"""The production topology as real processes: gunicorn web, workers, on PostgreSQL + Redis.

Used by the production tests (tests/production/test_faults.py): correctness under bursts and
faults. The timings of the same deployment are measured by bench/webhook_load.py
(`DATABASE_URL=postgresql://… REDIS_URL=redis://… --workers 2`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from bot.db.migrate import upgrade
from bot.processes import Process, spawn_bot, stop, wait_ready, wait_until
from testkit.load import Account, Outcome, Planned, send
from testkit.servers import free_port
from tests.support.builders import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM, WHATSAPP_FROM

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = Account(ACCOUNT_SID, AUTH_TOKEN, SMS_FROM)
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# One contact's part of the burst: a survey with a FAQ question and HELP in the middle.
SCRIPT = ["SURVEY", "2", "what are the steps", "1 3", "HELP"]
# Replies each step gets when everything is up: question, question, answer + question again,
# question, menu + reminder.
REPLIES = [1, 1, 2, 1, 2]


def burst_plan(contacts: int, per_contact: int, seconds: float, seed: int = 7) -> list[Planned]:
    """`contacts` people each sending SCRIPT spread evenly over `seconds`, interleaved."""
    rng = random.Random(seed)
    gap = seconds / per_contact
    plan = []
    for n in range(contacts):
        sender = f"+97798{n:08d}"
        offset = rng.uniform(0, gap)
        for step in range(per_contact):
            plan.append(Planned(offset + step * gap, sender, SCRIPT[step % len(SCRIPT)]))
    return sorted(plan, key=lambda p: p.at)


@dataclass
class Topology:
    """A deployment on a fresh PostgreSQL database and a Redis queue of its own."""

    twilio_url: str
    rasa_url: str
    web_workers: int = 2
    workers: int = 2
    database_port: int | None = None  # e.g. a TcpProxy's port in front of PostgreSQL
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = f"bot_prod_{uuid.uuid4().hex[:10]}"
        admin = POSTGRES.rsplit("/", 1)[0]
        self.admin_url = f"{admin}/postgres"
        direct = f"{admin}/{self.name}"
        if self.database_port is not None:
            host = admin.rsplit("@", 1)[1].split(":")[0]
            self.database_url = direct.replace(f"@{host}:5432", f"@127.0.0.1:{self.database_port}")
        else:
            self.database_url = direct
        self.direct_url = direct
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = (
            os.environ
            | {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": REDIS,
                "QUEUE_NAME": f"prod-{uuid.uuid4().hex[:8]}",
                "VAR_DIR": str(Path("/tmp") / self.name),
                "SECRET_KEY": "production-test-secret-0123456789",
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_SMS_FROM": SMS_FROM,
                "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
                "TWILIO_API_BASE": self.twilio_url,
                "PUBLIC_URL": self.url,
                "RASA_URL": self.rasa_url,
                "NLU_TIMEOUT_MS": "500",
                "RECOVER_AFTER_SECONDS": "2",
                "CLAIM_SECONDS": "15",
                "QUIET_HOURS": "off",
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT),
            }
            | self.extra_env
        )

    def start(self) -> Topology:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        engine.dispose()
        upgrade(self.direct_url)
        self.processes["web"] = self._spawn(
            "web", "--port", str(self.port), "--workers", str(self.web_workers)
        )
        for n in range(self.workers):
            self.start_worker(n)
        self.wait_ready()
        return self

    def _spawn(self, *args: str) -> Process:
        return spawn_bot(args, self.env, cwd=ROOT, stdout=subprocess.DEVNULL)

    def start_worker(self, n: int) -> None:
        self.processes[f"worker{n}"] = self._spawn("worker", "--sweep-every", "2")

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, as when a machine dies."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def wait_ready(self, timeout: float = 60) -> None:
        if not wait_ready(f"{self.url}/healthz", self.processes["web"], timeout):
            raise RuntimeError("the web process did not start")

    def send(self, plan: list[Planned], retry: int = 0) -> list[Outcome]:
        """Delivers the planned webhooks to this deployment, open loop (testkit.load)."""
        return send(f"{self.url}/webhooks/twilio/messages", plan, ACCOUNT, retry=retry)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return wait_until(predicate, timeout, interval=0.5)

    def stop(self) -> None:
        stop(list(self.processes.values()), timeout=30)
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        engine.dispose()
