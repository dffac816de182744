"""The service as the channel tests deploy it with understanding: the fake Rasa server and the
small FAQ catalogue (tests/support/faq_fixture), an immediate queue, a fake clock, and the
test client of its app. The sparrow and android members (tests/channels/*/conftest.py) are
people talking to it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from flask.testing import FlaskClient

from bot.app import create_app
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from nlu.catalogue import Catalogue
from tests.support.clock import FakeClock

FAQ_FIXTURE = Path(__file__).resolve().parent / "faq_fixture"


@contextmanager
def with_nlu(
    env: Mapping[str, str], overrides: Mapping[str, str], rasa_url: str, clock: FakeClock
) -> Iterator[tuple[Runtime, FlaskClient]]:
    """The service deployed with `env` and `overrides`, understanding through the fake Rasa
    at `rasa_url`; closed at the end."""
    settings = Settings.from_mapping(
        {**env, **overrides, "RASA_URL": rasa_url, "NLU_TIMEOUT_MS": "300"}
    )
    runtime = Runtime(
        settings,
        huey=make_huey(settings, immediate=True),
        clock=clock,
        catalogue=Catalogue.load(FAQ_FIXTURE),
    )
    try:
        yield runtime, create_app(settings, runtime).test_client()
    finally:
        runtime.close()
