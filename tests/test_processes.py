"""Real processes: a worker killed with SIGKILL mid-burst loses nothing after a restart.

Runs on the embedded default (SQLite + SQLite queue) and on PostgreSQL + Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from bot.core.messages import Channel, Inbound
from bot.db.models import Message
from bot.runtime import Runtime
from bot.settings import Settings
from tests.support.fake_twilio import FakeTwilio

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


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", "--sweep-every", "0.5"],
        env=os.environ | env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


def wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


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
