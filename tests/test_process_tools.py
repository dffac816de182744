"""bot/processes.py: how `bot run`, `bot nlu eval`, the benches and the tests start, probe and
stop Rasa (here a stand-in `rasa` executable) and other processes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import processes
from bot.metrics import read_process_states
from testkit.servers import free_port

FAKE_RASA = """#!{python}
import http.server, os, sys
if "--fail" in sys.argv:
    sys.exit(3)
if not os.environ.get("RASA_TOKEN"):  # the real server would serve without a token
    sys.exit(4)
port = int(sys.argv[sys.argv.index("-p") + 1])
http.server.ThreadingHTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)\\
    .serve_forever()
"""


@pytest.fixture
def fake_rasa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Rasa-venv `python` that answers HTTP on the port of `-m nlu.serve -p PORT`, as the real
    server does."""
    rasa = tmp_path / "rasa"
    rasa.write_text(FAKE_RASA.format(python=sys.executable))
    rasa.chmod(0o755)
    model = tmp_path / "nlu.tar.gz"
    model.write_text("")
    monkeypatch.setattr(processes, "RASA_PYTHON", rasa)
    monkeypatch.setattr(processes, "MODEL", model)
    return rasa


def test_rasa_is_started_probed_and_stopped(fake_rasa: Path, tmp_path: Path) -> None:
    assert processes.rasa_available()
    port = free_port()
    probes: list[str] = []
    rasa = processes.start_rasa(
        port,
        "the-token-0123456789",
        cwd=tmp_path,
        log_file=tmp_path / "rasa.log",
        timeout=30,
        probe=lambda: probes.append("parse") is None,
    )
    try:
        assert processes.answers(f"http://127.0.0.1:{port}/") and probes
        assert rasa.args[:3] == [str(fake_rasa), "-m", "nlu.serve"]
        assert not any("the-token-0123456789" in part for part in rasa.args)  # in its env
    finally:
        processes.stop([rasa], timeout=5)
    assert rasa.returncode is not None
    assert not processes.answers(f"http://127.0.0.1:{port}/")


def test_a_rasa_that_exits_is_reported_at_once(fake_rasa: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(processes.StartError, match="did not answer"):
        processes.start_rasa(free_port(), "t" * 20, extra=["--fail"], cwd=tmp_path, timeout=30)
    assert time.monotonic() - started < 10


def test_stop_kills_what_ignores_sigterm() -> None:
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
         "time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    started = time.monotonic()
    processes.stop([stubborn], timeout=0.5)
    assert stubborn.returncode == -9 and time.monotonic() - started < 5
    stubborn.stdout.close()


def test_a_child_that_dies_is_restarted_with_backoff_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`bot run` keeps going when a process dies: it starts it again, later each time."""
    started: list[bool] = []

    def sleeper(restarted: bool) -> processes.Process:
        started.append(restarted)
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    status = tmp_path / "processes.json"
    child = processes.Child("worker-1", sleeper)
    child.spawn()
    supervisor = processes.Supervisor([child], status)
    try:
        supervisor.check(now=child.started_at)
        assert json.loads(status.read_text())["processes"]["worker-1"]["state"] == "up"
        first = child.process
        assert first is not None
        first.kill()
        first.wait()
        supervisor.check(now=child.started_at + 1)
        assert child.state == "down" and child.last_exit == "killed by SIGKILL"
        down = {"state": "down", "pid": None, "restarts": 0, "last_exit": "killed by SIGKILL"}
        assert read_process_states(tmp_path) == {"worker-1": down}
        assert "worker-1 (pid" in caplog.text and "restarting in 0.5 s" in caplog.text
        supervisor.check(now=child.started_at + 1.6)  # the backoff (0.5 s) ran out
        assert child.state == "up" and child.restarts == 1 and started == [False, True]
        assert child.process is not None and child.process.pid != first.pid
        # Dying again soon after: twice the wait; after a minute up, the wait starts afresh.
        child.process.kill()
        child.process.wait()
        supervisor.check(now=child.started_at + 2)
        assert child.restart_at == child.started_at + 2 + 1.0
        supervisor.check(now=child.restart_at)
        assert child.state == "up" and child.restarts == 2
        child.process.kill()
        child.process.wait()
        supervisor.check(now=child.started_at + processes.RESTART_RESET)
        assert child.restart_at == child.started_at + processes.RESTART_RESET + 0.5
    finally:
        processes.stop(supervisor.processes(), timeout=5)


def test_a_child_that_becomes_ready_is_up_at_first_and_up_again_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first start of a slow starter (the NLU server) is not reported as a recovery."""
    ready = [False]

    def sleeper(restarted: bool) -> processes.Process:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    child = processes.Child("rasa-1", sleeper, ready=lambda: ready[0])
    child.spawn()
    supervisor = processes.Supervisor([child], tmp_path / "processes.json")
    caplog.set_level(logging.INFO, logger="bot")
    try:
        supervisor.check(now=child.started_at)
        assert child.state == "starting" and "rasa-1 is up" not in caplog.text
        ready[0] = True
        supervisor.check(now=child.started_at + 1)
        up = [r for r in caplog.records if "rasa-1 is up" in r.getMessage()]
        assert [(r.levelno, "again" in r.getMessage()) for r in up] == [(logging.INFO, False)]
        assert child.process is not None
        child.process.kill()
        child.process.wait()
        ready[0] = False
        supervisor.check(now=child.started_at + 2)  # noticed: down, restart in 0.5 s
        supervisor.check(now=child.started_at + 2.6)  # started again, not ready yet
        ready[0] = True
        supervisor.check(now=child.started_at + 3)
        up = [r for r in caplog.records if "rasa-1 is up" in r.getMessage()]
        assert [(r.levelno, "again" in r.getMessage()) for r in up] == [
            (logging.INFO, False),
            (logging.WARNING, True),
        ]
    finally:
        processes.stop(supervisor.processes(), timeout=5)


def test_exits_are_described_by_code_or_signal() -> None:
    assert processes.exit_description(1) == "exited with code 1"
    assert processes.exit_description(-15) == "killed by SIGTERM"


def test_rasa_can_run_at_a_lower_cpu_priority(fake_rasa: Path, tmp_path: Path) -> None:
    """`bot run` starts the NLU server at WORKER_NICE: it works for the workers."""
    rasa = processes.spawn_rasa(free_port(), "the-token-0123456789", cwd=tmp_path, nice=5)
    try:
        fields = Path(f"/proc/{rasa.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[16]) == 5  # the nice value (field 19 of /proc/PID/stat)
    finally:
        processes.stop([rasa], timeout=5)
