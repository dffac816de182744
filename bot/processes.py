"""Starting, probing and stopping the service's processes and Rasa's server.

One place for what `bot run`, `bot nlu eval`, the benchmarks and the process tests all do:
where Rasa and its model are, how `rasa run` is started (its HTTP API behind a token), how to
wait until a server answers, and how to stop a set of processes (SIGTERM, then SIGKILL for
whatever is still running after a grace period).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bot.settings import PROJECT_ROOT, Settings

log = logging.getLogger("bot")

RASA_BIN = PROJECT_ROOT / ".venv-rasa" / "bin" / "rasa"
MODEL = PROJECT_ROOT / "models" / "nlu.tar.gz"
# How long a stopped process may take before it is killed. Every process of the service
# stops well within this (gunicorn's graceful_timeout is shorter).
STOP_SECONDS = 15.0

Process = subprocess.Popen[bytes]


class StartError(RuntimeError):
    """A server did not start (or did not answer) in time."""


def rasa_available() -> bool:
    """True when Rasa is installed in `.venv-rasa` and a model is trained (`make train`)."""
    return RASA_BIN.exists() and MODEL.exists()


def rasa_token(settings: Settings) -> str:
    """RASA_TOKEN, or a new random one for the Rasa servers a command starts."""
    return settings.rasa_token or secrets.token_urlsafe(32)


def rasa_command(
    port: int, token: str, model: Path | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """`rasa run` on 127.0.0.1:port with the trained model; its HTTP API wants `token`.

    Without `--auth-token` anyone who reaches the port could replace the model (`PUT /model`).
    """
    return [str(RASA_BIN), "run", "--enable-api", "--auth-token", token,
            "-i", "127.0.0.1", "-p", str(port), "--model", str(model or MODEL),
            "--quiet", *extra]  # fmt: skip


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when GET `url` is answered with a success status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - loopback servers
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
    process: Process | None = None,
) -> bool:
    """Polls `predicate` until it holds (True), `process` (if given) dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        if predicate():
            return True
        time.sleep(interval)
    return False


def wait_ready(
    url: str,
    process: Process | None = None,
    timeout: float = 30.0,
    interval: float = 0.2,
    probe: Callable[[], bool] | None = None,
) -> bool:
    """Polls GET `url` (then `probe`, if given) until it answers, `process` dies or time runs
    out; returns whether it answered."""
    return wait_until(
        lambda: answers(url) and (probe is None or probe()), timeout, interval, process
    )


def start_rasa(
    port: int,
    token: str,
    *,
    model: Path | None = None,
    extra: Sequence[str] = (),
    cwd: Path = PROJECT_ROOT,
    env: Mapping[str, str] | None = None,
    log_file: Path | None = None,
    timeout: float = 180.0,
    probe: Callable[[], bool] | None = None,
    own_process_group: bool = False,
) -> Process:
    """Starts Rasa's server on 127.0.0.1:port and returns once it answers (and `probe` passes).

    Its output goes to `log_file` if given, else to ours. Raises StartError (having stopped
    it) when it exits or does not answer within `timeout` seconds; an interrupt meanwhile
    stops it too.
    """
    command = rasa_command(port, token, model, extra)
    options: dict[str, object] = {"cwd": cwd, "env": dict(env) if env is not None else None}
    if own_process_group:
        options |= own_group()
    if log_file is None:
        rasa = subprocess.Popen(command, **options)  # type: ignore[call-overload]  # noqa: S603
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("wb") as out:  # the child keeps its own copy of the descriptor
            rasa = subprocess.Popen(  # type: ignore[call-overload]  # noqa: S603
                command, stdout=out, stderr=subprocess.STDOUT, **options
            )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_ready(f"{url}/", rasa, timeout, interval=0.3, probe=probe)
    except BaseException:
        stop([rasa])
        raise
    if not ready:
        stop([rasa])
        raise StartError(f"Rasa on {url} did not answer in {timeout:.0f} s")
    return rasa


def spawn_bot(args: Sequence[str], env: Mapping[str, str], **popen: object) -> Process:
    """`python -m bot ARGS` (one of the service's processes) with this environment; `popen`
    holds more `subprocess.Popen` options (cwd, stdout, process_group…)."""
    return subprocess.Popen(  # type: ignore[call-overload]  # noqa: S603
        [sys.executable, "-m", "bot", *args], env=dict(env), **popen
    )


def stop(processes: Sequence[Process], timeout: float = STOP_SECONDS) -> None:
    """SIGTERM to each running process (each stops its own children), then SIGKILL to those
    still running after `timeout` seconds."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", process.args, timeout)
            process.kill()
            process.wait(timeout=5)


def supervise(children: Sequence[Process]) -> int:
    """Waits until a child exits or we are told to stop (SIGINT, SIGTERM, SIGHUP), then stops
    every child; returns the exit code for the supervisor.

    The children should run in process groups of their own (`process_group=0`): Ctrl-C then
    reaches the supervisor alone, and each child is asked to stop exactly once, by SIGTERM.
    In one group, every process got the terminal's SIGINT and then our SIGTERM: gunicorn's
    workers quit from inside a signal handler while their arbiter was stopping them, huey's
    consumer began a graceful stop and then an immediate one; a stop took 3 to 10 s and now
    and then ended with the arbiter SIGKILLing a worker that outlived its graceful_timeout
    ("Worker … was sent SIGKILL! Perhaps out of memory?").
    """
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    # SIGHUP too: a closed terminal reaches only its foreground group, which is us alone.
    signals = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if os.name == "posix" else [])
    previous = {s: signal.signal(s, on_signal) for s in signals}
    code = 0
    try:
        while not stopping.is_set():
            for child in children:
                if child.poll() is not None:
                    log.error("%s exited with %s; stopping", child.args, child.returncode)
                    code = child.returncode or 1
                    stopping.set()
            stopping.wait(0.2)
        stop(children)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def own_group() -> dict[str, object]:
    """Popen options that start a child in a process group of its own (see `supervise`)."""
    return {"process_group": 0} if os.name == "posix" else {}
