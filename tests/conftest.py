"""Shared fixtures: databases (SQLite and PostgreSQL), the fake Twilio API, the app."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from bot.app import create_app
from bot.db.database import Database
from bot.db.migrate import upgrade
from bot.db.models import Base
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from nlu.catalogue import Catalogue
from testkit.fake_rasa import FakeRasa
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import ACCOUNT_SID, AUTH_TOKEN, BASE_URL, SMS_FROM, WHATSAPP_FROM
from tests.support.clock import FakeClock
from tests.support.phone import Phone
from tests.support.required import missing

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class OutsideNetworkCall(AssertionError):
    """A test tried to reach a host that is not this machine's loopback."""


def _loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    host = host.strip("[]").lower()
    return host in ("localhost", "::1", "0:0:0:0:0:0:0:1") or host.startswith("127.")


def _literal_address(host: str) -> bool:
    """An IP address written out (the connect guard judges where it points)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _guarded(original):  # type: ignore[no-untyped-def]
    def connect(sock, address):  # type: ignore[no-untyped-def]
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise OutsideNetworkCall(f"tests never leave 127.0.0.1: connect to {address!r}")
        return original(sock, address)

    return connect


@pytest.fixture(scope="session", autouse=True)
def no_outside_network() -> Iterator[None]:
    """Every connection a test makes, through any library, goes to loopback or fails loudly
    (as python-telegram-bot's OfflineRequest does): no test can reach the internet by mistake.
    Names other than localhost are not even resolved."""
    original_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _loopback(name) and not _literal_address(name):
            raise OutsideNetworkCall(f"tests never resolve outside names: {name!r}")
        return original_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _guarded(socket.socket.connect))
        patch.setattr(socket.socket, "connect_ex", _guarded(socket.socket.connect_ex))
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("template") / "bot.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated, dropped at the end."""
    name = f"bot_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        missing(
            f"PostgreSQL is required here but unreachable: {exc}",
            f"PostgreSQL unreachable: {exc}",
        )
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database: every test that uses it runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "bot.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """A migrated, empty SQLite database (a copy of the template), disposed after the test."""
    path = tmp_path / "bot.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """The local Twilio-compatible API, started and stopped per test."""
    server = FakeTwilio().start()
    yield server
    server.stop()


@pytest.fixture
def env(database_url: str, twilio: FakeTwilio, tmp_path: Path) -> dict[str, str]:
    """The environment a test deployment runs with."""
    return {
        "DATABASE_URL": database_url,
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "test-secret-key-0123456789",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_SMS_FROM": SMS_FROM,
        "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
        "TWILIO_API_BASE": twilio.url,
        "PUBLIC_URL": BASE_URL,
    }


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """Variables a test adds to `env` (override this fixture, or parametrize it)."""
    return {}


@pytest.fixture
def settings(env: dict[str, str], settings_overrides: dict[str, str]) -> Settings:
    return Settings.from_mapping(env | settings_overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runtime(settings: Settings, clock: FakeClock) -> Iterator[Runtime]:
    """The service wired with an immediate queue: a webhook runs the whole pipeline."""
    rt = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    yield rt
    rt.close()


@pytest.fixture
def app(settings: Settings, runtime: Runtime):  # type: ignore[no-untyped-def]
    flask_app = create_app(settings, runtime)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def phone(client, twilio: FakeTwilio) -> Phone:  # type: ignore[no-untyped-def]
    return Phone(client, twilio)


FAQ_FIXTURE = Path(__file__).resolve().parent / "support" / "faq_fixture"


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    """A scripted Rasa server: `rasa.answers[text] = [(intent, confidence), ...]`."""
    server = FakeRasa().start()
    yield server
    server.stop()


@pytest.fixture
def nlu_runtime(env: dict[str, str], rasa: FakeRasa, clock: FakeClock) -> Iterator[Runtime]:
    """The service with the fake Rasa server and a small FAQ catalogue."""
    settings = Settings.from_mapping(env | {"RASA_URL": rasa.url, "NLU_TIMEOUT_MS": "300"})
    rt = Runtime(
        settings,
        huey=make_huey(settings, immediate=True),
        clock=clock,
        catalogue=Catalogue.load(FAQ_FIXTURE),
    )
    yield rt
    rt.close()


@pytest.fixture
def member(nlu_runtime: Runtime, twilio: FakeTwilio) -> Phone:
    """A phone talking to the service that has NLU."""
    client = create_app(nlu_runtime.settings, nlu_runtime).test_client()
    return Phone(client, twilio)


@pytest.fixture
def unpaced_runtime(env: dict[str, str], clock: FakeClock) -> Iterator[Runtime]:
    """The service with broadcasts unpaced (pace has its own benchmark)."""
    settings = Settings.from_mapping(env | {"BROADCAST_PACE": "sms=0,whatsapp=0"})
    rt = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    yield rt
    rt.close()
