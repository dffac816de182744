"""Starting, probing and stopping the service's processes and Rasa's server.

One place for what `bot run`, `bot nlu eval`, the benchmarks and the process tests all do:
where Rasa and its model are, how `rasa run` is started (its HTTP API behind a token), how to
wait until a server answers, and how to stop a set of processes (SIGTERM, then SIGKILL for
whatever is still running after a grace period).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.metrics import write_process_states
from bot.settings import PROJECT_ROOT, Settings

log = logging.getLogger("bot")

# Rasa's virtualenv (Python 3.10): its interpreter runs the NLU server (nlu/serve.py).
RASA_PYTHON = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"
MODEL = PROJECT_ROOT / "models" / "nlu.tar.gz"
# Rasa's numeric libraries start a thread pool per core for operations that take
# microseconds on one parse; on a small machine those threads spin against the service's
# own processes. One thread each (unless the environment says otherwise): Rasa's CPU per
# parse fell from 5.1-6.3 to 4.1-4.6 ms here (2 shared cores; bench/README.md).
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}
# How long a stopped process may take before it is killed. Every process of the service
# stops well within this (gunicorn's graceful_timeout is shorter).
STOP_SECONDS = 15.0

Process = subprocess.Popen[bytes]


class StartError(RuntimeError):
    """A server did not start (or did not answer) in time."""


def rasa_available() -> bool:
    """True when Rasa is installed in `.venv-rasa` and a model is trained (`make train`)."""
    return RASA_PYTHON.exists() and MODEL.exists()


def rasa_token(settings: Settings) -> str:
    """RASA_TOKEN, or a new random one for the Rasa servers a command starts."""
    return settings.rasa_token or secrets.token_urlsafe(32)


def rasa_command(port: int, model: Path | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The NLU server on 127.0.0.1:port with the trained model; its parse API wants the
    token `spawn_rasa` puts in its environment (RASA_TOKEN).

    `nlu/serve.py` in Rasa's virtualenv: Rasa's own loader and components behind the parse
    API of `rasa run --enable-api`, at well under half its CPU per parse (issue 15). It
    serves nothing but parses; RASA_URL may still point at a `rasa run` elsewhere.

    The token is not an argument: a command line is readable by every user of the machine
    (`ps`), and a random token starting with "-" (1 in 64 of `token_urlsafe`'s) was taken
    by argparse for an option, so that the server exited with code 2 at every restart.
    """
    return [str(RASA_PYTHON), "-m", "nlu.serve",
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


def spawn_rasa(
    port: int,
    token: str,
    *,
    model: Path | None = None,
    extra: Sequence[str] = (),
    cwd: Path = PROJECT_ROOT,
    env: Mapping[str, str] | None = None,
    log_file: Path | None = None,
    own_process_group: bool = False,
    nice: int = 0,
) -> Process:
    """Starts Rasa's server on 127.0.0.1:port and returns at once (`start_rasa` waits); at a
    lower CPU priority by `nice` (it works for the workers, not for the webhooks)."""
    command = rasa_command(port, model, extra)
    environment = {**ONE_THREAD, **(os.environ if env is None else env), "RASA_TOKEN": token}
    # `python -m nlu.serve` finds this project's nlu package from any working directory.
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), environment.get("PYTHONPATH", "")) if p
    )
    options: dict[str, object] = {"cwd": cwd, "env": environment}
    if own_process_group:
        options |= own_group()
    if log_file is None:
        process = subprocess.Popen(command, **options)  # type: ignore[call-overload]  # noqa: S603
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("wb") as out:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(  # type: ignore[call-overload]  # noqa: S603
                command, stdout=out, stderr=subprocess.STDOUT, **options
            )
    if nice > 0 and hasattr(os, "setpriority"):
        # From here rather than in the child before exec (preexec_fn is unsafe in a process
        # with threads); the server starts its own threads after this, and they inherit it.
        with contextlib.suppress(OSError):  # it exited already: the supervisor sees that
            os.setpriority(os.PRIO_PROCESS, process.pid, nice)
    return process


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
    rasa = spawn_rasa(
        port,
        token,
        model=model,
        extra=extra,
        cwd=cwd,
        env=env,
        log_file=log_file,
        own_process_group=own_process_group,
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


# A child that dies is started again after RESTART_FIRST seconds, then twice as long after
# each death up to RESTART_MAX; one that stayed up RESTART_RESET seconds starts afresh. A
# crash-looping child (a bad setting) retries twice a minute instead of spinning a core.
RESTART_FIRST = 0.5
RESTART_MAX = 30.0
RESTART_RESET = 60.0
# How long a restarted child with a readiness check (Rasa loading its model) may take.
READY_SECONDS = 300.0


@dataclass
class Child:
    """One supervised process: how to start it, how to tell it is ready, and its history.

    `start(restarted)` spawns it and returns at once; `restarted` is True when it replaces
    one that died. `ready`, if given, tells a started process is serving (Rasa answering).
    """

    name: str
    start: Callable[[bool], Process]
    ready: Callable[[], bool] | None = None
    group: bool = False  # started as the leader of a process group of its own (own_group)
    process: Process | None = None
    state: str = "down"  # up, starting (spawned, not ready yet), down (waiting to restart)
    restarts: int = 0
    last_exit: str | None = None
    started_at: float = 0.0
    delay: float = RESTART_FIRST
    restart_at: float = 0.0

    def spawn(self, restarted: bool = False) -> Process:
        """Starts the process (see `start`)."""
        self.process = self.start(restarted)
        self.started_at = time.monotonic()
        self.state = "starting" if self.ready is not None else "up"
        return self.process

    def status(self) -> dict[str, object]:
        pid = self.process.pid if self.process is not None and self.state != "down" else None
        return {"state": self.state, "pid": pid, "restarts": self.restarts,
                "last_exit": self.last_exit}  # fmt: skip


def exit_description(code: int) -> str:
    """The death of a process in words: "exited with code 1", "killed by SIGKILL"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Keeps every child running: a child that dies is logged, counted and started again with
    backoff; the state of each is written to `status_file` (read by /readyz and /metrics)."""

    def __init__(self, children: Sequence[Child], status_file: Path | None = None) -> None:
        self.children = list(children)
        self.status_file = status_file
        self._written: dict[str, dict[str, object]] | None = None

    def processes(self) -> list[Process]:
        return [c.process for c in self.children if c.process is not None]

    def check(self, now: float | None = None) -> None:
        """One round: notices deaths, restarts children whose backoff ran out, marks the
        restarted ready; writes the status file when anything changed."""
        now = time.monotonic() if now is None else now
        for child in self.children:
            process = child.process
            if child.state != "down" and process is not None and process.poll() is not None:
                self._died(child, process, now)
            elif child.state == "starting" and process is not None:
                if child.ready is not None and child.ready():
                    child.state = "up"
                    if child.restarts:
                        log.warning("%s is up again (pid %s)", child.name, process.pid)
                    else:  # the first start: nothing went wrong
                        log.info("%s is up (pid %s)", child.name, process.pid)
                elif now - child.started_at > READY_SECONDS:
                    log.error("%s not ready in %.0f s; starting it again", child.name,
                              READY_SECONDS)  # fmt: skip
                    stop([process])
                    self._died(child, process, now)
            if child.state == "down" and now >= child.restart_at:
                child.restarts += 1
                try:
                    process = child.spawn(restarted=True)
                except OSError as exc:  # the executable is gone: try again later
                    log.error("%s could not be started: %s", child.name, exc)
                    child.state, child.restart_at = "down", now + child.delay
                    child.delay = min(child.delay * 2, RESTART_MAX)
                    continue
                log.warning("%s restarted (pid %s, restart %s)", child.name, process.pid,
                            child.restarts)  # fmt: skip
        self.write_status()

    def _died(self, child: Child, process: Process, now: float) -> None:
        if now - child.started_at >= RESTART_RESET:
            child.delay = RESTART_FIRST
        child.last_exit = exit_description(process.returncode)
        if child.group:
            # What it left behind (gunicorn's workers hold the port its successor binds):
            # asked to finish what they were doing and go.
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGTERM)
        child.state = "down"
        child.restart_at = now + child.delay
        log.error("%s (pid %s) %s; restarting in %.1f s", child.name, process.pid,
                  child.last_exit, child.delay)  # fmt: skip
        child.delay = min(child.delay * 2, RESTART_MAX)

    def write_status(self) -> None:
        if self.status_file is None:
            return
        states = {child.name: child.status() for child in self.children}
        if states != self._written:
            try:
                write_process_states(self.status_file, states)
                self._written = states
            except OSError:
                log.exception("could not write %s", self.status_file)

    def remove_status(self) -> None:
        if self.status_file is not None:
            self.status_file.unlink(missing_ok=True)


def supervise(
    children: Sequence[Child],
    status_file: Path | None = None,
    stopping: threading.Event | None = None,
) -> int:
    """Keeps the children running until we are told to stop (SIGINT, SIGTERM, SIGHUP), then
    stops every child; returns the exit code for the supervisor.

    A child that dies (a crash, an OOM kill, `kill -9`) is started again with backoff (see
    RESTART_FIRST): the others keep serving meanwhile, and the work the dead one held is
    stored and taken up again (README: what survives a crash).

    The children should run in process groups of their own (`process_group=0`): Ctrl-C then
    reaches the supervisor alone, and each child is asked to stop exactly once, by SIGTERM.
    In one group, every process got the terminal's SIGINT and then our SIGTERM: gunicorn's
    workers quit from inside a signal handler while their arbiter was stopping them, huey's
    consumer began a graceful stop and then an immediate one; a stop took 3 to 10 s and now
    and then ended with the arbiter SIGKILLing a worker that outlived its graceful_timeout
    ("Worker … was sent SIGKILL! Perhaps out of memory?").

    `stopping`: the event of the caller's `stop_requests` (taken before it started the
    children); without it, supervise takes the signals itself.
    """
    with contextlib.ExitStack() as stack:
        if stopping is None:
            stopping = stack.enter_context(stop_requests())
        supervisor = Supervisor(children, status_file)
        try:
            while not stopping.is_set():
                supervisor.check()
                stopping.wait(0.2)
            stop(supervisor.processes())
        finally:
            supervisor.remove_status()
    return 0


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """Ctrl-C, SIGTERM and SIGHUP set the event instead of raising KeyboardInterrupt (or
    ending the process) anywhere: a supervisor told to stop while it starts its children
    stops every one it started, none half-started and left running. The previous handlers
    are back afterwards."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    # SIGHUP too: a closed terminal reaches only its foreground group, which is us alone.
    signals = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if os.name == "posix" else [])
    previous = {s: signal.signal(s, on_signal) for s in signals}
    try:
        yield stopping
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def own_group() -> dict[str, object]:
    """Popen options that start a child in a process group of its own (see `supervise`)."""
    return {"process_group": 0} if os.name == "posix" else {}
