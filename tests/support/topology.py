"""The production topology as real processes: gunicorn web, workers, on PostgreSQL + Redis.

Used by the production tests (correctness under bursts and faults) and by
bench/production_burst.py (timings).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bot.db.migrate import upgrade
from tests.support.builders import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM, WHATSAPP_FROM
from tests.support.load import Planned

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# One contact's part of the burst: a survey with a FAQ question and HELP in the middle.
SCRIPT = ["SURVEY", "2", "what are the steps", "1 3", "HELP"]
# Replies each step gets when everything is up: question, question, answer + question again,
# question, menu + reminder.
REPLIES = [1, 1, 2, 1, 2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


class FakeProcess:
    """A fake (Twilio's API, Rasa) in its own process, so the load generator's process does
    not slow it down; `url` is where it listens."""

    def __init__(self, module: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().decode().strip()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=60) as response:
            return json.load(response)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Topology:
    """A deployment on a fresh PostgreSQL database and a Redis queue of its own."""

    twilio_url: str
    rasa_url: str
    web_workers: int = 2
    workers: int = 2
    database_port: int | None = None  # e.g. a TcpProxy's port in front of PostgreSQL
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

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
                "CLAIM_SECONDS": "6",
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

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )

    def start_worker(self, n: int) -> None:
        self.processes[f"worker{n}"] = self._spawn("worker", "--sweep-every", "1")

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, as when a machine dies."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the web process did not start")

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        engine.dispose()
