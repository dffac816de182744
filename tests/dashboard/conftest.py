"""Fixtures for the dashboard: accounts in every role and clients signed in as them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from bot.app import create_app
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.support import PASSWORD, FakeModelServer, add_user, signed_in
from tests.support.builders import ACCOUNT_SID, AUTH_TOKEN, BASE_URL, SMS_FROM
from tests.support.clock import FakeClock


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One scrypt hash of PASSWORD for every test account (hashing is slow on purpose)."""
    return generate_password_hash(PASSWORD)


@dataclass(frozen=True)
class Accounts:
    """One account per role; the mobilizer works with ward-3, the other one with ward-9."""

    admin: int
    coordinator: int
    mobilizer: int
    other_mobilizer: int

    def of(self, role: str) -> int | None:
        return None if role == "anonymous" else int(getattr(self, role))


def _accounts(runtime: Runtime, password_hash: str) -> Accounts:
    db = runtime.db
    return Accounts(
        admin=add_user(db, "admin@example.org", "admin", password_hash),
        coordinator=add_user(db, "coord@example.org", "coordinator", password_hash),
        mobilizer=add_user(
            db, "mob@example.org", "mobilizer", password_hash, ("ward-3",), phone="+9779811111111"
        ),
        other_mobilizer=add_user(db, "mob9@example.org", "mobilizer", password_hash, ("ward-9",)),
    )


@pytest.fixture
def accounts(runtime: Runtime, password_hash: str) -> Accounts:
    return _accounts(runtime, password_hash)


@pytest.fixture
def as_role(app: Flask, runtime: Runtime, accounts: Accounts) -> Callable[[str], FlaskClient]:
    """`as_role("coordinator")`: a client signed in with that role (or anonymous)."""
    return lambda role: signed_in(app, runtime.db, accounts.of(role))


@pytest.fixture
def nlu_app(nlu_runtime: Runtime) -> Flask:
    """The application on the runtime that has the fake Rasa server."""
    flask_app = create_app(nlu_runtime.settings, nlu_runtime)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.fixture
def nlu_accounts(nlu_runtime: Runtime, password_hash: str) -> Accounts:
    return _accounts(nlu_runtime, password_hash)


@pytest.fixture
def model_server() -> Iterator[FakeModelServer]:
    server = FakeModelServer().start()
    yield server
    server.stop()


@dataclass
class Site:
    """An application on SQLite only, for behaviour that does not depend on the database."""

    app: Flask
    runtime: Runtime
    accounts: Accounts

    def client(self, role: str) -> FlaskClient:
        return signed_in(self.app, self.runtime.db, self.accounts.of(role))


@pytest.fixture
def sqlite_site(
    tmp_path: Path,
    sqlite_template: Path,
    twilio: FakeTwilio,
    clock: FakeClock,
    password_hash: str,
    settings_overrides: dict[str, str],
) -> Iterator[Site]:
    database = tmp_path / "site.db"
    shutil.copy(sqlite_template, database)
    settings = Settings.from_mapping(
        {
            "DATABASE_URL": f"sqlite:///{database}",
            "VAR_DIR": str(tmp_path / "var"),
            "SECRET_KEY": "test-secret-key-0123456789",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_SMS_FROM": SMS_FROM,
            "TWILIO_API_BASE": twilio.url,
            "PUBLIC_URL": BASE_URL,
        }
        | settings_overrides
    )
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    app = create_app(settings, runtime)
    app.config["TESTING"] = True
    yield Site(app, runtime, _accounts(runtime, password_hash))
    runtime.close()
