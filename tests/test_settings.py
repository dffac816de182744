from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings


def base(tmp_path: Path) -> dict[str, str]:
    return {"VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 32}


def test_embedded_default_needs_nothing(tmp_path: Path) -> None:
    settings = Settings.from_mapping({"VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'bot.db'}"
    assert not settings.twilio_enabled
    assert settings.redis_url is None
    # A random key is made once and kept, so sessions survive restarts.
    assert Settings.from_mapping({"VAR_DIR": str(tmp_path)}).secret_key == settings.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x"),
        ("PUBLIC_URL", "bot.example.org"),
        ("TWILIO_API_BASE", "ftp://x"),
        ("RASA_URL", "localhost:5005"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("TWILIO_ACCOUNT_SID", "123"),
        ("TWILIO_SMS_FROM", "12345"),
        ("WORKER_CONCURRENCY", "many"),
        ("SEND_CONCURRENCY", "0"),
        ("SECRET_KEY", "short"),
        ("SIMULATOR_ENABLED", "perhaps"),
        ("BOT_ENV", "staging"),
    ],
)
def test_malformed_setting_is_named(name: str, value: str, tmp_path: Path) -> None:
    env = base(tmp_path) | {name: value}
    if name == "TWILIO_SMS_FROM":
        env |= {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t"}
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping(env)


def test_twilio_needs_token_and_sender(tmp_path: Path) -> None:
    env = base(tmp_path) | {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32}
    with pytest.raises(SettingsError, match="TWILIO_AUTH_TOKEN"):
        Settings.from_mapping(env)
    with pytest.raises(SettingsError, match="TWILIO_MESSAGING_SERVICE_SID"):
        Settings.from_mapping(env | {"TWILIO_AUTH_TOKEN": "t"})
    ok = Settings.from_mapping(
        env | {"TWILIO_AUTH_TOKEN": "t", "TWILIO_WHATSAPP_FROM": "+15005550006"}
    )
    assert ok.twilio_whatsapp_from == "whatsapp:+15005550006"


def test_production_requires_secret_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_mapping({"VAR_DIR": str(tmp_path), "BOT_ENV": "production"})


def test_simulator_is_off_in_production_unless_asked(tmp_path: Path) -> None:
    production = base(tmp_path) | {"BOT_ENV": "production"}
    assert not Settings.from_mapping(production).simulator_enabled
    assert Settings.from_mapping(production | {"SIMULATOR_ENABLED": "1"}).simulator_enabled
    assert Settings.from_mapping(base(tmp_path)).simulator_enabled


def test_postgres_url_uses_psycopg3(tmp_path: Path) -> None:
    settings = Settings.from_mapping(base(tmp_path) | {"DATABASE_URL": "postgresql://u@h/db"})
    assert settings.database_url == "postgresql+psycopg://u@h/db"


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"# comment\nexport VAR_DIR={tmp_path}\nSECRET_KEY='{'k' * 20}'\nRASA_URL=http://127.0.0.1:5005\n"
    )
    settings = load_settings({"RASA_URL": "http://127.0.0.1:5006"}, dotenv)
    assert settings.secret_key == "k" * 20
    assert settings.rasa_urls == ("http://127.0.0.1:5006",)


def test_bad_dotenv_line_names_file_and_line(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("SECRET_KEY=abc\nthis is not a setting\n")
    with pytest.raises(SettingsError, match=r"\.env:2"):
        load_settings({}, dotenv)


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    settings = Settings.from_mapping(
        base(tmp_path)
        | {
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "very-secret-token",
            "TWILIO_SMS_FROM": "+15005550006",
        }
    )
    assert "very-secret-token" not in repr(settings)
    assert "x" * 32 not in repr(settings)


def test_several_rasa_servers(tmp_path: Path) -> None:
    settings = Settings.from_mapping(
        base(tmp_path) | {"RASA_URL": "http://127.0.0.1:5005, http://127.0.0.1:5006/"}
    )
    assert settings.rasa_urls == ("http://127.0.0.1:5005", "http://127.0.0.1:5006")


def test_a_new_installation_gets_one_admin_shown_once(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import select

    from bot.cli import _first_admin
    from bot.db.database import Database
    from bot.db.models import User
    from bot.settings import Settings

    settings = Settings.from_mapping(env)
    _first_admin(settings)
    _first_admin(settings)  # a second start creates nobody
    printed = capsys.readouterr().out
    assert printed.count("first dashboard account: admin@example.org") == 1
    db = Database(settings.database_url)
    with db.read() as session:
        assert [(u.email, u.role) for u in session.scalars(select(User))] == [
            ("admin@example.org", "admin")
        ]
    db.dispose()
