"""The `bot` command: how `bot run` starts Rasa (issue 12: its HTTP API behind a token)."""

from __future__ import annotations

import os
import signal
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
    monkeypatch.setattr(cli, "wait_until", lambda *_, **__: True)  # the web is ready at once
    monkeypatch.delenv("RASA_TOKEN", raising=False)
    with pytest.raises(SystemExit):
        _bot_run(rasa_servers=2, web_workers=1, workers=1)
    tokens = {token for _, token in started}
    assert [port for port, _ in started] == [5005, 5006] and len(tokens) == 1
    token = tokens.pop()
    assert len(token) >= 32
    assert children and all(env["RASA_TOKEN"] == token for env in children)
    assert all(Settings.from_mapping(env | base).rasa_token == token for env in children)
    # A set RASA_TOKEN is used as it is (a Rasa elsewhere that was started with it).
    assert processes.rasa_token(Settings.from_mapping(base | {"RASA_TOKEN": "t" * 20})) == "t" * 20


def _bot_run(rasa_servers: int, web_workers: int, workers: int) -> None:
    """`bot run`'s callback, as `bot run --rasa-servers … --web-workers … --workers …`."""
    assert cli.run.callback is not None
    cli.run.callback(
        port=5000,
        rasa_port=5005,
        rasa_servers=rasa_servers,
        web_workers=web_workers,
        workers=workers,
        schedulers=1,
        create_database=False,
    )


class _Spawned:
    """A child process as `bot run` sees it: recorded (its command's name) instead of run."""

    def __init__(self, args: list[str], events: list[str]) -> None:
        self.name = args[0]
        self.stopped = False
        events.append(self.name)

    def poll(self) -> int | None:
        return 0 if self.stopped else None


def _run_without_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web_ready: Any
) -> tuple[list[str], list[list[str]]]:
    """`bot run`'s callback with its processes recorded, not started (no Rasa: no model);
    `web_ready(events)` stands for waiting until the web answers. Returns what happened in
    order (the children spawned, "first admin", "waited") and what each `stop` was given."""
    settings = Settings.from_mapping({"VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 32})
    events: list[str] = []
    stopped: list[list[str]] = []

    def stop(children: list[_Spawned], **_: Any) -> None:
        stopped.append([child.name for child in children])
        for child in children:
            child.stopped = True

    def wait_until(*_: Any, **__: Any) -> bool:
        events.append("waited")
        return bool(web_ready(events))

    monkeypatch.setattr(cli, "settings_or_exit", lambda: settings)
    monkeypatch.setattr("bot.db.migrate.upgrade", lambda *_: None)
    monkeypatch.setattr(cli, "_first_admin", lambda _: events.append("first admin"))
    monkeypatch.setattr(cli, "rasa_available", lambda: False)
    monkeypatch.setattr(cli, "spawn_bot", lambda args, *_, **__: _Spawned(args, events))
    monkeypatch.setattr(cli, "wait_until", wait_until)
    monkeypatch.setattr(cli, "stop", stop)
    monkeypatch.setattr(cli, "supervise", lambda *_: 0)
    with pytest.raises(SystemExit) as ended:
        _bot_run(rasa_servers=1, web_workers=2, workers=2)
    assert ended.value.code == 0
    return events, stopped


def test_bot_run_starts_the_web_first_and_the_rest_once_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: webhooks accepted within seconds of a start. The workers' and the
    scheduler's start-up shared the two cores with the web's; measured on a slow machine,
    /healthz answered 10.2 s after `bot run` with everything started at once, 6.4-7.0 s with
    the web first (README: issue 15)."""
    events, stopped = _run_without_processes(tmp_path, monkeypatch, lambda _: True)
    assert events == ["web", "first admin", "waited", "worker", "worker", "scheduler"]
    assert stopped == []


def test_ctrl_c_while_bot_run_starts_stops_what_it_started_and_starts_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the web starts: no KeyboardInterrupt between a child's start and its
    record (a worker and the scheduler were left running after `bot run` had stopped), and
    nothing started after it."""

    def interrupted(_: list[str]) -> bool:
        os.kill(os.getpid(), signal.SIGINT)  # what the terminal sends
        return False

    events, stopped = _run_without_processes(tmp_path, monkeypatch, interrupted)
    assert events == ["web", "first admin", "waited"]
    assert stopped == [["web"]]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


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
