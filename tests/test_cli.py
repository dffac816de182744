"""The `bot` command: how `bot run` starts Rasa (issue 12: its HTTP API behind a token)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot import processes
from bot.cli import main
from bot.cli import run as cli
from bot.runtime import Runtime
from bot.settings import Settings
from tests.support.builders import add_contact


@pytest.mark.parametrize("token", ["the-token-0123456789", "-starts-like-an-option"])
def test_rasa_takes_its_auth_token_from_the_environment(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on the command line, which every user of the machine can read; and a random
    token starting with "-" (1 in 64) made nlu.serve's argparse exit with code 2."""
    from nlu.serve import arguments

    command = processes.rasa_command(5005)
    assert command[1:3] == ["-m", "nlu.serve"]
    assert command[command.index("-i") + 1] == "127.0.0.1"
    monkeypatch.setenv("RASA_TOKEN", token)
    parsed = arguments(command[3:])
    assert parsed.auth_token == token and parsed.port == 5005
    assert not any(token in part for part in command)


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
    monkeypatch.setattr(processes, "RASA_PYTHON", tmp_path / "rasa")
    monkeypatch.setattr(processes, "MODEL", tmp_path / "nlu.tar.gz")
    monkeypatch.setattr(cli, "spawn_rasa", lambda port, token, **_: started.append((port, token)))
    monkeypatch.setattr(subprocess, "Popen", Child)
    monkeypatch.setattr(cli, "supervise", lambda *_: 0)
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
    assert processes.rasa_token(Settings.from_mapping(base | {"RASA_TOKEN": "t" * 20})) == "t" * 20


def test_python_m_bot_cli_is_the_same_command_tree_as_bot() -> None:
    """`python -m bot.cli users …` had no `users` command (issue 14)."""
    root = Path(__file__).resolve().parent.parent

    def commands(module: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.split("Commands:", 1)[1]

    listed = commands("bot.cli")
    assert listed == commands("bot")
    for name in ("users", "contacts", "retention", "run", "worker", "broadcast", "nlu"):
        assert f"\n  {name} " in listed
    users = subprocess.run(
        [sys.executable, "-m", "bot.cli", "users", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert users.returncode == 0, users.stderr
    assert "Dashboard users" in users.stdout


def test_survey_invite_starts_known_contacts_and_names_the_rest(
    env: dict[str, str], runtime: Runtime
) -> None:
    add_contact(runtime.db, "+9779801234567")
    runner = CliRunner()
    invited = runner.invoke(
        main,
        ["survey", "invite", "community_assessment", "9801234567", "+9779807654321", "12"],
        env=env,
    )
    assert invited.exit_code == 0, invited.output
    lines = invited.output.splitlines()
    assert "+9779801234567: started" in lines
    assert "+9779807654321: unknown contact" in lines
    assert any(line.startswith("12: ") for line in lines)  # not a phone number


def test_freeze_startup_heap_takes_what_is_loaded_out_of_the_collectors_walks() -> None:
    import gc

    from bot.cli.common import freeze_startup_heap

    loaded = [{"topic": i} for i in range(1000)]  # what start-up loaded, held for good
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(loaded)
        assert not any(obj is loaded for obj in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()


def test_bot_run_starts_two_workers_where_there_are_two_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.cli import run as cli

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert cli.default_workers() == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert cli.default_workers() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert cli.default_workers() == 1
