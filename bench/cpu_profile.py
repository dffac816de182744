"""CPU per FAQ message of the web's webhook path and the worker's turn path, in this process.

Not the whole topology `make run` starts: a deterministic profiling harness, loopback only,
well under a minute. Rasa's CPU is left out on purpose (its model belongs elsewhere): the
worker talks to the fake Rasa of testkit/ (answering each question with its FAQ topic) and
to the fake Twilio API, both in processes of their own so that their CPU is not counted.

- **web**: the Flask app `bot web` serves (`create_app`, embedded SQLite and queue, deferred
  enqueue), driven by Flask's test client with signed Twilio webhooks, one per message from
  distinct senders; CPU is `time.process_time()` of this process (every thread, the enqueuer
  too) over the N requests; the test client's own work is included, as gunicorn's would be.
- **worker**: the messages the web stored are handled as `bot worker` does (on the embedded
  default its inbound feed, bot/feed.py, with WORKER_CONCURRENCY threads beside Huey's
  consumer; Huey's queue alone for a base commit from before the feed; group commits, the
  async sender, its GIL switch interval)
  until every message is handled and every reply has reached the fake Twilio API; CPU is
  `time.process_time()` over that span.
- **bot web (gunicorn)**: `bot web` itself (gunicorn, its processes' CPU from /proc) taking
  the same number of webhooks over HTTP at --gunicorn-rate per second: what the web really
  costs, parsing and threads included (not profiled).

The web and worker parts run twice: once timed, once under cProfile (every thread, each
timed by its own CPU clock), whose top functions by cumulative and by own time are printed.
The CPU calibration of bench/webhook_load.py comes first. `--base DIR` runs the timed round
in a checkout of a base commit and in this one, alternately, and prints both and the
medians: absolute figures vary between runs on a shared machine, ratios in one run hold.

    .venv/bin/python -m bench.cpu_profile --messages 300
    git worktree add --detach /tmp/base e2ad11f
    .venv/bin/python -m bench.cpu_profile --base /tmp/base --repeat 5  # old against new
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twilio.request_validator import RequestValidator

from bench.webhook_load import ACCOUNT_SID, AUTH_TOKEN, calibrate
from testkit.servers import FakeProcess

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_PATH = "/webhooks/twilio/messages"
PUBLIC_URL = "http://127.0.0.1:8000"


def questions(count: int) -> list[tuple[str, str]]:
    """`count` distinct FAQ questions (bench/nlu_texts.py) and the intent each asks about."""
    from bench.nlu_texts import QuestionGenerator

    generator = QuestionGenerator(seed=11)
    topics = generator.catalogue.topics
    return [(q.text, topics[q.topic].intent) for q in generator.take(count)]


def environment(workdir: Path, rasa_url: str, twilio_url: str) -> dict[str, str]:
    """The settings `bot run` gives its processes, on a fresh embedded database."""
    return {
        "DATABASE_URL": f"sqlite:///{workdir / 'bot.db'}",
        "VAR_DIR": str(workdir),
        "SECRET_KEY": "bench-secret-key-0123456789",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_SMS_FROM": "+15005550006",
        "TWILIO_API_BASE": twilio_url,
        "PUBLIC_URL": PUBLIC_URL,
        "RASA_URL": rasa_url,
        "LOG_LEVEL": "INFO",  # bot run's default: the worker logs a line per turn
    }


def quiet_logging() -> None:
    """Logging configured as `bot …` does (INFO, text), written to /dev/null: the formatting
    is part of the cost, the terminal is not."""
    from bot import logs

    logs.configure("INFO")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - for the process' life


class Profiles:
    """cProfile, per thread, timed by each thread's own CPU clock (not wall time: a thread
    waiting on a lock or a socket costs nothing). cProfile sees only the thread that enabled
    it, so every thread started inside `profiled_threads` enables its own at its first
    event; this thread's starts at `start()`, once the process is built (YAML loading is a
    start-up cost, not a per-message one). Some blocking C calls of threads still show their
    wait (`SimpleQueue.get`, `lock.acquire`): read the Python functions' figures."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.profiles: list[cProfile.Profile] = []
        self._main: cProfile.Profile | None = None

    def new(self) -> cProfile.Profile:
        profile = cProfile.Profile(time.thread_time)
        self.profiles.append(profile)
        profile.enable()
        return profile

    def start(self) -> None:
        if self.enabled and self._main is None:
            self._main = self.new()

    def stop(self) -> None:
        if self._main is not None:
            self._main.disable()


@contextmanager
def profiled_threads(enabled: bool) -> Iterator[Profiles]:
    """Profiles every thread started inside the block, and this one from `start()`."""
    profiles = Profiles(enabled)
    if not enabled:
        yield profiles
        return

    def start_in_thread(*_: Any) -> None:
        sys.setprofile(None)
        profiles.new()

    threading.setprofile(start_in_thread)
    try:
        yield profiles
    finally:
        profiles.stop()
        threading.setprofile(None)


def print_top(
    title: str, profiles: list[cProfile.Profile], top: int, dump: str | None = None
) -> None:
    stats: pstats.Stats | None = None
    for profile in profiles:
        try:
            if stats is None:
                stats = pstats.Stats(profile)
            else:
                stats.add(profile)
        except TypeError:  # a thread that recorded nothing
            continue
    if stats is None:
        return
    if dump:
        stats.dump_stats(f"{dump}.{title}.pstats")
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats(key).print_stats(top)
        lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
        start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
        print(f"\n  {title}: top {top} by {key}")
        for line in lines[start:]:
            print("   ", line.replace(str(ROOT) + "/", "")[:160])


def run_web(env: dict[str, str], texts: list[str], offset: int, profiles: Profiles) -> float:
    """Posts one signed webhook per text, as `bot web` receives them; returns CPU seconds
    (the deferred enqueues included: the queue holds every contact before the clock stops)."""
    from bot.app import create_app
    from bot.settings import load_settings

    app = create_app(load_settings(env, dotenv=Path(os.devnull)))
    client = app.test_client()
    validator = RequestValidator(AUTH_TOKEN)
    url = PUBLIC_URL + WEBHOOK_PATH
    requests = []
    for i, text in enumerate(texts):  # signed beforehand: Twilio's work, not ours
        form = {
            "MessageSid": f"SM{offset + i:032d}",
            "AccountSid": ACCOUNT_SID,
            "From": f"+1555{offset + i:07d}",
            "To": "+15005550006",
            "Body": text,
            "NumMedia": "0",
        }
        requests.append((form, validator.compute_signature(url, form)))
    client.post(WEBHOOK_PATH, data={}, headers={"X-Twilio-Signature": "warm-up"})
    profiles.start()
    started = time.process_time()
    for form, signature in requests:
        response = client.post(WEBHOOK_PATH, data=form, headers={"X-Twilio-Signature": signature})
        if response.status_code != 200:
            raise SystemExit(f"webhook answered {response.status_code}: {response.data[:200]!r}")
    runtime = app.extensions["bot"]
    if runtime._enqueuer is not None:  # the enqueues trailing the answers are the web's too
        runtime._enqueuer.close()
        runtime._enqueuer = None
    cpu = time.process_time() - started
    profiles.stop()
    runtime.close()
    return cpu


def run_worker(
    env: dict[str, str], expected: int, profiles: Profiles, switch_interval: float
) -> float:
    """Consumes the queue (or reads the inbound feed) as `bot worker` does until every inbound
    message is handled and every reply has reached the fake Twilio API (`expected` messages
    waiting), with the GIL switch interval `bot worker` sets (bot/cli/worker.py)."""
    from bot.cli.worker import make_consumer
    from bot.runtime import Runtime
    from bot.settings import load_settings

    settings = load_settings(env, dotenv=Path(os.devnull))
    runtime = Runtime(settings, background=True)
    # (A base commit from before the feed has no `inbound_feed`: Huey's queue only.)
    with_feed = getattr(runtime, "inbound_feed", False)
    feed = runtime.make_feed(settings.worker_concurrency) if with_feed else None
    consumer = make_consumer(runtime, check_health=False)
    # Read apart from the service's engine (a plain connection: a few microseconds a look).
    watch = sqlite3.connect(env["DATABASE_URL"].split("///", 1)[1])
    waiting = (
        "SELECT count(*) FROM messages WHERE (direction = 'in' AND status = 'received')"
        " OR (direction = 'out' AND status IN ('pending', 'dispatching'))"
    )
    if watch.execute(waiting).fetchone()[0] < expected:
        raise SystemExit("worker: the web did not leave the messages waiting")
    default_interval = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    profiles.start()
    started = time.process_time()
    if feed is not None:
        feed.start()
    consumer.start()
    deadline = time.monotonic() + 30
    while watch.execute(waiting).fetchone()[0]:
        if time.monotonic() > deadline:
            raise SystemExit(f"worker: {watch.execute(waiting).fetchone()[0]} still waiting")
        time.sleep(0.05)
    cpu = time.process_time() - started
    profiles.stop()
    sys.setswitchinterval(default_interval)
    watch.close()
    consumer.stop(graceful=True)
    runtime.close()
    return cpu


def run_gunicorn(env: dict[str, str], texts: list[str], offset: int, rate: float) -> float:
    """`bot web` as `bot run` starts it (gunicorn, its own database): CPU seconds of its
    processes while `texts` arrive as signed webhooks at `rate` per second over HTTP."""
    from bench.webhook_load import ACCOUNT, cpu_seconds
    from bot.db.migrate import upgrade
    from bot.processes import spawn_bot, stop, wait_ready
    from testkit.load import Planned, at_rate, send
    from testkit.servers import free_port

    port = free_port()
    var = Path(env["VAR_DIR"]) / "gunicorn"
    (var / "metrics").mkdir(parents=True, exist_ok=True)
    env = env | {
        "VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'bot.db'}",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(var / "metrics"),  # as `bot run` sets it
        "LOG_LEVEL": "INFO",
    }
    upgrade(env["DATABASE_URL"])
    web = spawn_bot(
        ["web", "--port", str(port)],
        env,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_ready(f"http://127.0.0.1:{port}/healthz", web, timeout=30):
            raise SystemExit("bot web did not start")
        plan = [
            Planned(at, f"+1556{offset + i:07d}", text, sid=f"SM{offset + i:032d}")
            for i, (at, text) in enumerate(zip(at_rate(rate, len(texts)), texts, strict=True))
        ]
        before = cpu_seconds(web.pid)
        outcomes = send(f"http://127.0.0.1:{port}{WEBHOOK_PATH}", plan, ACCOUNT)
        cpu = cpu_seconds(web.pid) - before
        failed = [o.status for o in outcomes if o.status != 200]
        if failed:
            raise SystemExit(f"bot web answered {failed[:5]}… to {len(failed)} webhooks")
        return cpu
    finally:
        stop([web])


def phase(
    name: str,
    action: Callable[[Profiles], float],
    count: int,
    profile: bool,
    top: int,
    dump: str | None = None,
) -> float:
    with profiled_threads(profile) as profiles:
        cpu = action(profiles)
    per_message = cpu * 1000 / count
    label = "profiled" if profile else "timed"
    print(f"{name:7} {label:9} {count} messages: {per_message:.2f} ms CPU per message")
    if profile:
        print_top(name, profiles.profiles, top, dump)
    return per_message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0005,
        help="the worker's sys.setswitchinterval (bot/cli/worker.py sets 0.0005)",
    )
    parser.add_argument(
        "--gunicorn-rate",
        type=float,
        default=100.0,
        help="also time `bot web` under gunicorn at this many webhooks/s (0: skip)",
    )
    parser.add_argument("--dump", help="also write the profiles to DUMP.web/worker.pstats")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument(
        "--base", type=Path, help="a checkout of the base commit: compare it with this one"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each with --base")
    args = parser.parse_args()
    if args.base:
        compare(args.base.resolve(), args.messages, args.repeat, args.gunicorn_rate)
        return
    began = time.monotonic()
    calibration = calibrate()
    print(f"calibration: {calibration} ms (bench/webhook_load.py calibrate())")
    count = args.messages
    rounds = [False] if args.no_profile else [False, True]
    pairs = questions(count * len(rounds))
    answers = [f"--answer={fold_text(t)}={intent}:0.95" for t, intent in pairs]
    rasa = FakeProcess("testkit.fake_rasa", *answers)
    twilio = FakeProcess("testkit.fake_twilio")
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="cpu-profile-") as tmp:
            env = environment(Path(tmp), rasa.url, twilio.url)
            from bot.db.migrate import upgrade

            upgrade(env["DATABASE_URL"])
            quiet_logging()
            os.environ.update(env)  # pieces that read the environment directly see the same
            for i, profile in enumerate(rounds):
                texts = [t for t, _ in pairs[i * count : (i + 1) * count]]
                offset = i * count
                web_ms = phase(
                    "web",
                    lambda p, texts=texts, offset=offset: run_web(env, texts, offset, p),  # type: ignore[misc]
                    count,
                    profile,
                    args.top,
                    args.dump,
                )
                worker_ms = phase(
                    "worker",
                    lambda p: run_worker(env, count, p, args.switch_interval),
                    count,
                    profile,
                    args.top,
                    args.dump,
                )
                if not profile:
                    gunicorn_ms = 0.0
                    if args.gunicorn_rate:
                        cpu = run_gunicorn(env, texts, 10**6 + i * count, args.gunicorn_rate)
                        gunicorn_ms = cpu * 1000 / count
                        print(
                            f"bot web   gunicorn  {count} messages at {args.gunicorn_rate:g}/s: "
                            f"{gunicorn_ms:.2f} ms CPU per message"
                        )
                    figures = {
                        "calibration_ms": calibration,
                        "web_ms": web_ms,
                        "worker_ms": worker_ms,
                        "gunicorn_ms": gunicorn_ms,
                    }
    finally:
        rasa.stop()
        twilio.stop()
    print(
        f"CPU per FAQ message: web {figures['web_ms']:.2f} ms, worker {figures['worker_ms']:.2f}"
        f" ms (timed round; {time.monotonic() - began:.0f} s in all)"
    )
    if args.json:
        print(json.dumps(figures))


def compare(base: Path, messages: int, repeat: int, gunicorn_rate: float) -> None:
    """Runs the timed round of this harness in `base` (a checkout of the base commit) and in
    this checkout, alternately `repeat` times, and prints each run and the medians: the
    machine is shared, so one pair of runs proves little."""
    import statistics

    runs: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
    for _ in range(repeat):
        for name, where in (("base", base), ("this", ROOT)):
            # This file, importing the project from `where` (PYTHONPATH comes before the
            # editable install): the same harness measures both commits.
            env = dict(os.environ, PYTHONPATH=str(where))
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--no-profile",
                    "--json",
                    "--messages",
                    str(messages),
                    "--gunicorn-rate",
                    str(gunicorn_rate),
                ],
                cwd=where,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout.splitlines()
            figures = json.loads(out[-1])
            runs[name].append(figures)
            print(
                f"{name:4}  calibration {figures['calibration_ms']:4.0f} ms  "
                f"web {figures['web_ms']:.2f} ms  worker {figures['worker_ms']:.2f} ms  "
                f"bot web (gunicorn) {figures['gunicorn_ms']:.2f} ms"
            )
    print(f"\nmedians of {repeat} runs each, CPU ms per FAQ message ({messages} messages a run):")
    print("| part | base | this | this/base |\n|---|---|---|---|")
    for part in ("web_ms", "worker_ms", "gunicorn_ms"):
        old = statistics.median(r[part] for r in runs["base"])
        new = statistics.median(r[part] for r in runs["this"])
        print(f"| {part[:-3]} | {old:.2f} | {new:.2f} | {new / old:.2f} |")
    old = statistics.median(r["web_ms"] + r["worker_ms"] for r in runs["base"])
    new = statistics.median(r["web_ms"] + r["worker_ms"] for r in runs["this"])
    print(f"| web + worker | {old:.2f} | {new:.2f} | {new / old:.2f} |")


def fold_text(text: str) -> str:
    """The text as the Rasa client sends it (the fake answers by exact text)."""
    from bot.core.wording import fold

    return fold(text)


if __name__ == "__main__":
    main()
