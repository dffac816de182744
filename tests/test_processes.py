"""Real processes: a worker killed with SIGKILL mid-burst loses nothing after a restart.

Runs on the embedded default (SQLite + SQLite queue) and on PostgreSQL + Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from bot.core.messages import Channel, Inbound
from bot.db.models import Message
from bot.processes import Process, spawn_bot, wait_ready, wait_until
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_twilio import FakeTwilio
from testkit.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
COUNT = 300

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(env: dict[str, str], database_url: str) -> dict[str, str]:
    """The embedded default on SQLite; PostgreSQL with Redis for the queue."""
    kind = "embedded" if database_url.startswith("sqlite") else "postgres+redis"
    deployed = dict(env) | {
        "RECOVER_AFTER_SECONDS": "1",
        "CLAIM_SECONDS": "3",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:8]}",
        "LOG_LEVEL": "WARNING",
    }
    if kind == "postgres+redis":
        url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
        try:
            redis.Redis.from_url(url).ping()
        except redis.RedisError as exc:
            if os.environ.get("CI"):
                pytest.fail(f"Redis is required in CI: {exc}")
            pytest.skip(f"Redis unreachable: {exc}")
        deployed["REDIS_URL"] = url
    return deployed


def start_worker(env: dict[str, str]) -> Process:
    return spawn_bot(
        ["worker", "--sweep-every", "0.5"], os.environ | env, cwd=ROOT, stdout=subprocess.DEVNULL
    )


def test_worker_killed_mid_burst_answers_everyone_once(
    deployment: dict[str, str], twilio: FakeTwilio
) -> None:
    twilio.delay = 0.05
    settings = Settings.from_mapping(deployment)
    web = Runtime(settings)  # the web side: store, then enqueue on the real queue
    senders = [f"+97798{i:08d}" for i in range(COUNT)]
    worker = start_worker(deployment)
    try:
        for i, sender in enumerate(senders):
            web.accept(Inbound(Channel.SMS, sender, "help", provider_id=f"SM{i:032d}"))
        assert wait_until(lambda: len(twilio.sent) >= COUNT // 4, 60), "worker did not start"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = len(twilio.sent)
        assert killed_at < COUNT, "the burst finished before the kill; nothing was tested"
        worker = start_worker(deployment)
        answered = lambda: {c.form["To"] for c in twilio.sent} >= set(senders)  # noqa: E731
        assert wait_until(answered, 90), f"only {len({c.form['To'] for c in twilio.sent})} answered"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    with web.db.read() as s:
        inbound = Counter(s.scalars(select(Message.status).where(Message.direction == "in")))
        replies = s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "out")
        )
        per_inbound = s.execute(
            select(Message.in_reply_to_id, func.count())
            .where(Message.direction == "out")
            .group_by(Message.in_reply_to_id)
            .having(func.count() > 1)
        ).all()
    web.close()
    assert inbound == {"processed": COUNT}
    assert replies == COUNT and per_inbound == []  # every message answered exactly once
    deliveries = Counter(c.form["To"] for c in twilio.sent)
    # Sends under way at the kill are checked with the provider before being sent again.
    assert max(deliveries.values()) == 1, deliveries.most_common(3)


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children…), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def browse(port: int, done: threading.Event) -> None:
    """Loads the dashboard's sign-in page again and again until `done`."""
    while not done.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/login", timeout=5):
                pass
        except OSError:
            time.sleep(0.05)


def test_ctrl_c_stops_bot_run_and_all_its_processes_cleanly(tmp_path: Path) -> None:
    """Ctrl-C on `make run`: every process gone within 5 s, none killed (issue 14)."""
    port, unused = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "RASA_TOKEN", "TWILIO_ACCOUNT_SID")
    } | {
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "test-secret-key-0123456789",
        "RASA_URL": f"http://127.0.0.1:{unused}",  # nothing listens: Rasa is not started
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path / "run.log"
    browsing = threading.Event()
    with log.open("wb") as out:
        # A session of its own, as a terminal gives `make run`: Ctrl-C is a SIGINT to the
        # whole foreground process group.
        run = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_ready(f"http://127.0.0.1:{port}/healthz", run, timeout=60), log.read_text()
        # web (gunicorn and its 2 workers), worker and scheduler are up.
        assert wait_until(lambda: len(_descendants(run.pid)) >= 5, 30), log.read_text()
        # Requests in flight when Ctrl-C comes: gunicorn's workers are busy, as in real use.
        for _ in range(6):
            threading.Thread(target=browse, args=(port, browsing), daemon=True).start()
        time.sleep(2.0)
        processes = _descendants(run.pid) | {run.pid}
        started = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=10)
        assert wait_until(lambda: not any(map(_alive, processes)), 5)
        seconds = time.monotonic() - started
    finally:
        browsing.set()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    output = log.read_text()
    assert run.returncode == 0, output
    assert "SIGKILL" not in output and "Traceback" not in output, output
    assert seconds <= 5, f"stopping took {seconds:.1f} s"
