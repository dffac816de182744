from __future__ import annotations

from pathlib import Path

import pytest

from bot.channels.android.settings import AndroidGateway
from bot.channels.sparrow.settings import SparrowSettings
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
        ("INBOUND_SPOOL", "sometimes"),
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

    from bot.cli.run import _first_admin
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


# -- Security (issue 12) -------------------------------------------------------------------

TWILIO = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "t",
    "TWILIO_SMS_FROM": "+15005550006",
}


def test_message_bodies_are_never_logged_in_production(tmp_path: Path) -> None:
    assert Settings.from_mapping(base(tmp_path) | {"LOG_MESSAGE_BODIES": "true"}).log_message_bodies
    assert not Settings.from_mapping(base(tmp_path)).log_message_bodies
    production = base(tmp_path) | {"BOT_ENV": "production", "LOG_MESSAGE_BODIES": "true"}
    with pytest.raises(SettingsError, match="LOG_MESSAGE_BODIES"):
        Settings.from_mapping(production)


def test_production_with_twilio_requires_public_url(tmp_path: Path) -> None:
    production = base(tmp_path) | TWILIO | {"BOT_ENV": "production"}
    with pytest.raises(SettingsError, match="PUBLIC_URL"):
        Settings.from_mapping(production)
    ok = Settings.from_mapping(production | {"PUBLIC_URL": "https://bot.example.org"})
    assert ok.public_url == "https://bot.example.org"
    # Development keeps rebuilding the URL from the request.
    assert Settings.from_mapping(base(tmp_path) | TWILIO).public_url is None


def test_production_with_a_rasa_server_requires_its_token(tmp_path: Path) -> None:
    production = base(tmp_path) | {"BOT_ENV": "production", "RASA_URL": "http://10.0.0.5:5005"}
    with pytest.raises(SettingsError, match="RASA_TOKEN"):
        Settings.from_mapping(production)
    token = "r" * 24
    assert Settings.from_mapping(production | {"RASA_TOKEN": token}).rasa_token == token
    assert token not in repr(Settings.from_mapping(production | {"RASA_TOKEN": token}))


@pytest.mark.parametrize("name", ["OPS_TOKEN", "RASA_TOKEN"])
@pytest.mark.parametrize("value", ["short", "x" * 20 + " y", "x" * 20 + "&token=z"])
def test_malformed_tokens_are_named(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping(base(tmp_path) | {name: value})


PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_processes() -> dict[str, str]:
    """The Procfile's `name: command` lines."""
    processes = {}
    for line in PROCFILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def test_every_procfile_process_runs_with_production_defaults() -> None:
    """Each line runs in a shell (honcho, foreman, a PaaS): with BOT_ENV unset, the process it
    starts must see BOT_ENV=production, and an explicit BOT_ENV still wins."""
    import os
    import shlex
    import subprocess

    processes = procfile_processes()
    assert {"release", "web", "worker", "scheduler", "rasa"} <= set(processes)
    unset = {k: v for k, v in os.environ.items() if k != "BOT_ENV"}
    for name, command in processes.items():
        # The leading NAME=value words, as written (the shell expands them below).
        assignments = []
        for word in shlex.split(command):
            if "=" not in word or not word.split("=", 1)[0].isidentifier():
                break
            assignments.append(word)
        probe = f"{' '.join(assignments)} sh -c 'printf %s \"$BOT_ENV\"'"
        for env, expected in ((unset, "production"), (unset | {"BOT_ENV": "test"}, "test")):
            seen = subprocess.run(["sh", "-c", probe], env=env, capture_output=True, text=True)
            assert seen.stdout == expected, f"{name}: BOT_ENV={seen.stdout!r}"


def test_procfile_rasa_requires_the_token() -> None:
    """Joined by "=": a token starting with "-" would otherwise be taken for an option."""
    rasa = procfile_processes()["rasa"]
    assert "--enable-api" in rasa and "--auth-token=${RASA_TOKEN" in rasa


# Providers' own settings (issue 11): parsed by bot/channels/<name>/settings.py, kept in
# the one Settings, checked at start like the rest.

THREE_PHONES = {
    "ANDROID_GATEWAY_PHONES": ";".join(f"p{i}=http://127.0.0.1:{i},u,pw" for i in (1, 2, 3)),
    "ANDROID_GATEWAY_SIGNING_KEY": "shared-signing-key",
}


def test_each_provider_s_settings_come_from_its_folder(tmp_path: Path) -> None:
    settings = Settings.from_mapping(
        base(tmp_path)
        | THREE_PHONES
        | {
            "SPARROW_TOKEN": "sparrow-api-token",
            "SPARROW_FROM": "TheAlert",
            "SPARROW_INBOUND_TOKEN": "inbound-secret-0123456789",
            "SPARROW_ALLOWED_IPS": "203.0.113.0/24",
        }
    )
    sparrow = settings.provider("sparrow", SparrowSettings)
    assert sparrow is not None and sparrow.enabled
    assert (sparrow.sender, sparrow.api_base) == ("TheAlert", "https://api.sparrowsms.com")
    assert sparrow.inbound_token == "inbound-secret-0123456789"
    android = settings.provider("android", AndroidGateway)
    assert android is not None and [p.name for p in android.phones] == ["p1", "p2", "p3"]
    assert "sparrow-api-token" not in repr(settings) and "inbound-secret" not in repr(settings)
    # Asking for a provider's settings as another's kind is a bug, said at once.
    with pytest.raises(TypeError, match="sparrow"):
        settings.provider("sparrow", AndroidGateway)
    # Not configured: Sparrow disabled, no Android pool.
    bare = Settings.from_mapping(base(tmp_path))
    assert not (bare.provider("sparrow", SparrowSettings) or SparrowSettings()).enabled
    assert bare.provider("android", AndroidGateway) is None


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"SPARROW_TOKEN": "t"}, "SPARROW_FROM"),
        ({"SPARROW_API_BASE": "ftp://x"}, "SPARROW_API_BASE"),
        ({"SPARROW_INBOUND_TOKEN": "short"}, "SPARROW_INBOUND_TOKEN"),
        ({"SPARROW_ALLOWED_IPS": "10.0.0.0/8, nowhere"}, "SPARROW_ALLOWED_IPS"),
        ({"ANDROID_GATEWAY_MODE": "usb"}, "ANDROID_GATEWAY_MODE"),
        (THREE_PHONES | {"ANDROID_GATEWAY_PACE": "fast"}, "ANDROID_GATEWAY_PACE"),
    ],
)
def test_a_provider_s_bad_setting_stops_start_up_and_is_named(
    overrides: dict[str, str], name: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(base(tmp_path) | overrides, dotenv=tmp_path / "none.env")


def test_default_paces_come_from_the_channel_or_the_provider(tmp_path: Path) -> None:
    settings = Settings.from_mapping(base(tmp_path) | THREE_PHONES)
    assert settings.pace_for("sms", "+15005550006") == 1.0  # a Twilio long code
    assert settings.pace_for("whatsapp", "whatsapp") == 20.0
    assert settings.pace_for("sms", "sms:sparrow", "sparrow") == 10.0  # Sparrow's own
    # The pool: each phone's pace (6 a minute by default) times the phones configured.
    assert settings.pace_for("sms", "sms:android", "android") == pytest.approx(0.3)
    one = Settings.from_mapping(
        base(tmp_path) | THREE_PHONES | {"ANDROID_GATEWAY_PHONES": "p1=http://127.0.0.1:1,u,pw"}
    )
    assert one.pace_for("sms", "sms:android", "android") == pytest.approx(0.1)
    faster = Settings.from_mapping(base(tmp_path) | THREE_PHONES | {"ANDROID_GATEWAY_PACE": "12"})
    assert faster.pace_for("sms", "sms:android", "android") == pytest.approx(0.6)
    # No pool configured: the route has no pace of its own (nothing is sent on it).
    bare = Settings.from_mapping(base(tmp_path))
    assert bare.pace_for("sms", "sms:android", "android") == 1.0


def test_broadcast_pace_overrides_every_default(tmp_path: Path) -> None:
    settings = Settings.from_mapping(
        base(tmp_path)
        | THREE_PHONES
        | {"BROADCAST_PACE": "sms=2,sms:sparrow=3,sms:android=0.5,+15005550006=4,whatsapp=0"}
    )
    assert settings.pace_for("sms", "+15005550007") == 2.0
    assert settings.pace_for("sms", "+15005550006") == 4.0  # the sender's own entry
    assert settings.pace_for("sms", "sms:sparrow", "sparrow") == 3.0
    assert settings.pace_for("sms", "sms:android", "android") == 0.5
    assert settings.pace_for("whatsapp", "whatsapp") == 0.0  # unpaced
    with pytest.raises(SettingsError, match="BROADCAST_PACE"):
        Settings.from_mapping(base(tmp_path) | {"BROADCAST_PACE": "sms:android=fast"})


def test_worker_concurrency_defaults_to_the_database_kind_unless_set() -> None:
    embedded = Settings.from_mapping({})
    production = Settings.from_mapping({"DATABASE_URL": "postgresql://bot@127.0.0.1/bot"})
    chosen = Settings.from_mapping(
        {"DATABASE_URL": "postgresql://bot@127.0.0.1/bot", "WORKER_CONCURRENCY": "8"}
    )
    assert (embedded.worker_concurrency, production.worker_concurrency) == (16, 4)
    assert chosen.worker_concurrency == 8


def test_the_inbound_spool_is_on_for_sqlite_and_off_for_postgres_unless_set(tmp_path: Path) -> None:
    postgres = {"DATABASE_URL": "postgresql://bot@127.0.0.1/bot"}
    assert Settings.from_mapping(base(tmp_path)).inbound_spool
    assert not Settings.from_mapping(base(tmp_path) | postgres).inbound_spool
    chosen = Settings.from_mapping(base(tmp_path) | postgres | {"INBOUND_SPOOL": "true"})
    assert chosen.inbound_spool
    assert not Settings.from_mapping(base(tmp_path) | {"INBOUND_SPOOL": "false"}).inbound_spool


def test_a_setting_is_given_by_the_environment_or_the_dotenv_file(tmp_path: Path) -> None:
    """`bot run` turns INBOUND_SPOOL on for what it starts unless it was set either way."""
    from bot.settings import setting_given

    dotenv = tmp_path / ".env"
    assert not setting_given("INBOUND_SPOOL", {}, dotenv)
    assert setting_given("INBOUND_SPOOL", {"INBOUND_SPOOL": "false"}, dotenv)
    dotenv.write_text("INBOUND_SPOOL=false\n")
    assert setting_given("INBOUND_SPOOL", {}, dotenv)
    assert not setting_given("WORKER_NICE", {}, dotenv)
