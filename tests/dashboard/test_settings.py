"""The dashboard's settings are the service's: one Settings object, read from the environment
and `.env`, given to `create_app` (issue 14: `.env` once never reached the dashboard).

Settings do not depend on the database: SQLite only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from limits import parse

from bot.app import create_app
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import PROJECT_ROOT, Settings, SettingsError, load_settings
from tests.dashboard.conftest import _accounts
from tests.dashboard.support import sign_in, signed_in
from tests.support.clock import FakeClock


def test_values_in_dotenv_reach_the_dashboard(
    tmp_path: Path, sqlite_template: Path, clock: FakeClock, password_hash: str
) -> None:
    database = tmp_path / "bot.db"
    shutil.copy(sqlite_template, database)
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# the dashboard's settings, only in .env\n"
        "HANDOFF_HOURS=72\n"
        'LOGIN_LIMIT_PER_ACCOUNT="2 per 15 minutes"\n'
        f"NLU_MODELS_DIR={tmp_path / 'models'}\n"
    )
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{database}",
            "VAR_DIR": str(tmp_path / "var"),
            "SECRET_KEY": "test-secret-key-0123456789",
        },
        dotenv,
    )
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    try:
        app = create_app(settings, runtime)
        app.config["TESTING"] = True
        accounts = _accounts(runtime, password_hash)
        assert app.extensions["dashboard"].settings is settings
        page = signed_in(app, runtime.db, accounts.admin).get("/dashboard/settings")
        text = page.get_data(as_text=True)
        assert "<th>HANDOFF_HOURS</th><td>72</td>" in text
        assert f"<th>NLU_MODELS_DIR</th><td>{tmp_path / 'models'}</td>" in text
        client = app.test_client()
        assert [sign_in(client, "coord@example.org", "guess").status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]
    finally:
        runtime.close()


def test_dashboard_settings_defaults_and_values(tmp_path: Path) -> None:
    defaults = Settings.from_mapping({"VAR_DIR": str(tmp_path)})
    assert defaults.handoff_hours == 24
    assert defaults.login_limit_ip == parse("20 per 5 minutes")
    assert defaults.login_limit_account == parse("10 per 15 minutes")
    assert defaults.nlu_train_command[0] == ".venv-rasa/bin/rasa"
    assert "{nlu}" in defaults.nlu_train_command and "{name}" in defaults.nlu_train_command
    assert defaults.nlu_models_dir == PROJECT_ROOT / "models"
    assert defaults.nlu_current_model == PROJECT_ROOT / "models" / "nlu.tar.gz"
    given = Settings.from_mapping(
        {
            "VAR_DIR": str(tmp_path),
            "HANDOFF_HOURS": " 4 ",
            "LOGIN_LIMIT_PER_IP": "5 per minute",
            "NLU_TRAIN_COMMAND": "train --out '{out} dir'",
            "NLU_MODELS_DIR": str(tmp_path / "m"),
        }
    )
    assert given.handoff_hours == 4
    assert given.login_limit_ip == parse("5 per minute")
    assert given.nlu_train_command == ("train", "--out", "{out} dir")
    assert given.nlu_current_model == tmp_path / "m" / "nlu.tar.gz"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HANDOFF_HOURS", "soon", "HANDOFF_HOURS must be a whole number of hours, got 'soon'"),
        ("HANDOFF_HOURS", "0", "HANDOFF_HOURS must be between 1 and 720 hours, got 0"),
        ("HANDOFF_HOURS", "721", "HANDOFF_HOURS must be between 1 and 720 hours, got 721"),
        ("LOGIN_LIMIT_PER_IP", "lots", "LOGIN_LIMIT_PER_IP must look like '10 per 5 minutes'"),
        ("LOGIN_LIMIT_PER_ACCOUNT", "3 a day", "LOGIN_LIMIT_PER_ACCOUNT must look like"),
        ("NLU_TRAIN_COMMAND", "rasa 'train", "NLU_TRAIN_COMMAND must be a command line"),
    ],
)
def test_malformed_dashboard_settings_are_named(
    name: str, value: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_mapping({"VAR_DIR": str(tmp_path), name: value})
    assert str(raised.value).startswith(message)


def test_the_settings_page_never_shows_a_secret(
    tmp_path: Path, sqlite_template: Path, clock: FakeClock, password_hash: str
) -> None:
    database = tmp_path / "bot.db"
    shutil.copy(sqlite_template, database)
    secrets = {
        "SECRET_KEY": "secret-key-value-0123456789",
        "OPS_TOKEN": "ops-token-value-0123456789",
        "RASA_TOKEN": "rasa-token-value-0123456789",
        "PHONE_HASH_KEY": "phone-hash-key-value-0123456789",
    }
    settings = Settings.from_mapping(
        {"DATABASE_URL": f"sqlite:///{database}", "VAR_DIR": str(tmp_path / "var")} | secrets
    )
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    try:
        app = create_app(settings, runtime)
        accounts = _accounts(runtime, password_hash)
        text = (
            signed_in(app, runtime.db, accounts.admin)
            .get("/dashboard/settings")
            .get_data(as_text=True)
        )
        assert "(set)" in text
        for value in secrets.values():
            assert value not in text
    finally:
        runtime.close()
