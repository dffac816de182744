"""Fixtures for personal data: the service with a real job queue (SQLite file or Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from huey import Huey

from bot.app import create_app
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from nlu.catalogue import Catalogue
from testkit.fake_rasa import FakeRasa
from tests.conftest import FAQ_FIXTURE
from tests.support.clock import FakeClock

REDIS_URL = "redis://127.0.0.1:6379/15"


def drain(huey: Huey, limit: int = 1000) -> int:
    """Runs every task waiting in the queue, as a worker would; returns how many ran."""
    ran = 0
    # Redis's dequeue blocks for a second when the queue is empty: look first.
    while ran < limit and huey.storage.queue_size() and (task := huey.dequeue()) is not None:
        huey.execute(task)
        ran += 1
    return ran


@dataclass
class Service:
    """The service as deployed: a queue that keeps tasks in its store until a worker runs."""

    runtime: Runtime
    client: FlaskClient
    settings: Settings

    def drain(self) -> int:
        return drain(self.runtime.huey)


@pytest.fixture
def service(
    env: dict[str, str], database_url: str, rasa: FakeRasa, clock: FakeClock, tmp_path: Path
) -> Iterator[Service]:
    """SQLite database → SQLite queue in var/; PostgreSQL → Redis queue (a fresh name)."""
    extra = {"RASA_URL": rasa.url, "BROADCAST_PACE": "sms=0,whatsapp=0"}
    if not database_url.startswith("sqlite"):
        extra |= {"REDIS_URL": REDIS_URL, "QUEUE_NAME": f"erase-{uuid.uuid4().hex[:10]}"}
    settings = Settings.from_mapping(env | extra)
    runtime = Runtime(
        settings, huey=make_huey(settings), clock=clock, catalogue=Catalogue.load(FAQ_FIXTURE)
    )
    app = create_app(settings, runtime)
    app.config["TESTING"] = True
    yield Service(runtime, app.test_client(), settings)
    if settings.redis_url:
        runtime.huey.storage.flush_all()
    runtime.close()
