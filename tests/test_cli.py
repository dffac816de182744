"""The `bot` command: how `bot run` starts Rasa (issue 12: its HTTP API behind a token)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.settings import Settings


def test_rasa_is_started_with_an_auth_token() -> None:
    command = cli.rasa_command(5005, "the-token-0123456789")
    assert command[1:3] == ["run", "--enable-api"]
    assert command[command.index("--auth-token") + 1] == "the-token-0123456789"
    assert command[command.index("-i") + 1] == "127.0.0.1"


def test_bot_run_gives_rasa_and_every_process_one_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without RASA_TOKEN a run makes a random one: Rasa requires it, the service sends it."""
    base = {"VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 32}
    settings = Settings.from_mapping(base)
    assert settings.rasa_token is None
    for name in ("rasa", "nlu.tar.gz"):
        (tmp_path / name).write_text("")
    started: list[tuple[int, str]] = []
    children: list[dict[str, str]] = []

    class Child:
        def __init__(self, args: list[str], env: dict[str, str], **_: Any) -> None:
            children.append(env)

    monkeypatch.setattr(cli, "settings_or_exit", lambda: settings)
    monkeypatch.setattr("bot.db.migrate.upgrade", lambda *_: None)
    monkeypatch.setattr(cli, "_first_admin", lambda _: None)
    monkeypatch.setattr(cli, "RASA_BIN", tmp_path / "rasa")
    monkeypatch.setattr(cli, "MODEL", tmp_path / "nlu.tar.gz")
    monkeypatch.setattr(cli, "_start_rasa", lambda port, token: started.append((port, token)))
    monkeypatch.setattr(subprocess, "Popen", Child)
    monkeypatch.setattr(cli, "_supervise", lambda _: 0)
    monkeypatch.delenv("RASA_TOKEN", raising=False)
    with pytest.raises(SystemExit):
        assert cli.run.callback is not None
        cli.run.callback(
            port=5000,
            rasa_port=5005,
            rasa_servers=2,
            web_workers=1,
            workers=1,
            schedulers=1,
            create_database=False,
        )
    tokens = {token for _, token in started}
    assert [port for port, _ in started] == [5005, 5006] and len(tokens) == 1
    token = tokens.pop()
    assert len(token) >= 32
    assert children and all(env["RASA_TOKEN"] == token for env in children)
    assert all(Settings.from_mapping(env | base).rasa_token == token for env in children)
    # A set RASA_TOKEN is used as it is (a Rasa elsewhere that was started with it).
    assert cli.rasa_token(Settings.from_mapping(base | {"RASA_TOKEN": "t" * 20})) == "t" * 20
