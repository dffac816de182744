"""bot/processes.py: how `bot run`, `bot nlu eval`, the benches and the tests start, probe and
stop Rasa (here a stand-in `rasa` executable) and other processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import processes
from testkit.servers import free_port

FAKE_RASA = """#!{python}
import http.server, sys
if "--fail" in sys.argv:
    sys.exit(3)
port = int(sys.argv[sys.argv.index("-p") + 1])
http.server.ThreadingHTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)\\
    .serve_forever()
"""


@pytest.fixture
def fake_rasa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `rasa` that answers HTTP on the port of `rasa run -p PORT`, as the real one does."""
    rasa = tmp_path / "rasa"
    rasa.write_text(FAKE_RASA.format(python=sys.executable))
    rasa.chmod(0o755)
    model = tmp_path / "nlu.tar.gz"
    model.write_text("")
    monkeypatch.setattr(processes, "RASA_BIN", rasa)
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
        assert rasa.args[:2] == [str(fake_rasa), "run"]
        assert "the-token-0123456789" in rasa.args
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
