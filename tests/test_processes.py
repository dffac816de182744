"""Real processes: a worker killed with SIGKILL mid-burst loses nothing after a restart.

Runs on the embedded default (SQLite + SQLite queue) and on PostgreSQL + Redis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from bot.core.messages import Channel, Inbound
from bot.db.models import Message
from bot.processes import Process, spawn_bot, wait_ready, wait_until
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_twilio import FakeTwilio
from testkit.load import Account, Planned, send
from testkit.servers import FakeProcess, free_port
from tests.support.bot_run import ROOT, at_exit, bot_run, run_env, stand_in_rasa, twilio_env
from tests.support.builders import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM

COUNT = 300
ACCOUNT = Account(ACCOUNT_SID, AUTH_TOKEN, SMS_FROM)
# `bot run` on its embedded defaults: no outside database, queue or Rasa.
NO_SERVICES = ("DATABASE_URL", "REDIS_URL", "RASA_URL", "RASA_TOKEN")

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(env: dict[str, str], database_url: str) -> dict[str, str]:
    """The embedded default on SQLite; PostgreSQL with Redis for the queue."""
    kind = "embedded" if database_url.startswith("sqlite") else "postgres+redis"
    deployed = dict(env) | {
        "RECOVER_AFTER_SECONDS": "1",
        "CLAIM_SECONDS": "3",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:8]}",
        "LOG_LEVEL": "WARNING",
    }
    if kind == "postgres+redis":
        url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
        try:
            redis.Redis.from_url(url).ping()
        except redis.RedisError as exc:
            if os.environ.get("CI"):
                pytest.fail(f"Redis is required in CI: {exc}")
            pytest.skip(f"Redis unreachable: {exc}")
        deployed["REDIS_URL"] = url
    return deployed


def start_worker(env: dict[str, str]) -> Process:
    return spawn_bot(
        ["worker", "--sweep-every", "0.5"], os.environ | env, cwd=ROOT, stdout=subprocess.DEVNULL
    )


def test_worker_killed_mid_burst_answers_everyone_once(
    deployment: dict[str, str], twilio: FakeTwilio
) -> None:
    twilio.delay = 0.05
    settings = Settings.from_mapping(deployment)
    web = Runtime(settings)  # the web side: store, then enqueue on the real queue
    senders = [f"+97798{i:08d}" for i in range(COUNT)]
    worker = start_worker(deployment)
    try:
        for i, sender in enumerate(senders):
            web.accept(Inbound(Channel.SMS, sender, "help", provider_id=f"SM{i:032d}"))
        assert wait_until(lambda: len(twilio.sent) >= COUNT // 4, 60), "worker did not start"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = len(twilio.sent)
        assert killed_at < COUNT, "the burst finished before the kill; nothing was tested"
        worker = start_worker(deployment)
        answered = lambda: {c.form["To"] for c in twilio.sent} >= set(senders)  # noqa: E731
        assert wait_until(answered, 90), f"only {len({c.form['To'] for c in twilio.sent})} answered"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    with web.db.read() as s:
        inbound = Counter(s.scalars(select(Message.status).where(Message.direction == "in")))
        replies = s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "out")
        )
        per_inbound = s.execute(
            select(Message.in_reply_to_id, func.count())
            .where(Message.direction == "out")
            .group_by(Message.in_reply_to_id)
            .having(func.count() > 1)
        ).all()
    web.close()
    assert inbound == {"processed": COUNT}
    assert replies == COUNT and per_inbound == []  # every message answered exactly once
    deliveries = Counter(c.form["To"] for c in twilio.sent)
    # Sends under way at the kill are checked with the provider before being sent again.
    assert max(deliveries.values()) == 1, deliveries.most_common(3)


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children…), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def browse(port: int, done: threading.Event) -> None:
    """Loads the dashboard's sign-in page again and again until `done`."""
    while not done.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/login", timeout=5):
                pass
        except OSError:
            time.sleep(0.05)


def test_ctrl_c_stops_bot_run_and_all_its_processes_cleanly(tmp_path: Path) -> None:
    """Ctrl-C on `make run`: every process gone within 5 s, none killed (issue 14)."""
    port, unused = free_port(), free_port()
    env = run_env(
        tmp_path / "var",
        drop=("DATABASE_URL", "REDIS_URL", "RASA_TOKEN", "TWILIO_ACCOUNT_SID",
              "XDG_RUNTIME_DIR"),
        RASA_URL=f"http://127.0.0.1:{unused}",  # nothing listens: Rasa is not started
        LOG_LEVEL="INFO",
        HOME=str(tmp_path / "home"),  # where gunicorn 27 would put its control socket
    )  # fmt: skip
    log = tmp_path / "run.log"
    browsing = threading.Event()
    command = [sys.executable, "-m", "bot", "run", "--port", str(port)]
    with bot_run(command, env, log) as run:
        try:
            assert wait_ready(f"http://127.0.0.1:{port}/healthz", run, timeout=60), log.read_text()
            # web (gunicorn and its 2 workers), worker and scheduler are up.
            assert wait_until(lambda: len(_descendants(run.pid)) >= 5, 30), log.read_text()
            # Requests in flight when Ctrl-C comes: gunicorn's workers are busy, as in real use.
            for _ in range(6):
                threading.Thread(target=browse, args=(port, browsing), daemon=True).start()
            time.sleep(2.0)
            processes = _descendants(run.pid) | {run.pid}
            started = time.monotonic()
            os.killpg(run.pid, signal.SIGINT)
            run.wait(timeout=10)
            assert wait_until(lambda: not any(map(_alive, processes)), 5)
            seconds = time.monotonic() - started
        finally:
            browsing.set()
    output = log.read_text()
    assert run.returncode == 0, output
    assert "SIGKILL" not in output and "Traceback" not in output, output
    assert seconds <= 5, f"stopping took {seconds:.1f} s"
    # No control socket shared by every `bot web` of the user (bot/cli/web.py).
    assert "Control socket" not in output and not (tmp_path / "home" / ".gunicorn").exists()


# One contact's messages, and the replies each gets when everything is up. The FAQ question
# comes outside the survey: while Rasa is down it is answered "I cannot understand you right
# now" instead of the answer (one reply either way); mid-survey it would count as an answer.
RESTART_SCRIPT = ["what are the steps", "SURVEY", "2", "1 3", "HELP"]
RESTART_REPLIES = {"what are the steps": 1, "SURVEY": 1, "2": 1, "1 3": 1, "HELP": 2}
RESTART_CONTACTS = int(os.environ.get("RESTART_CONTACTS", "250"))
RESTART_SECONDS = 25.0


def _readyz(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)
    except OSError:
        return 0, {}


def _watch(url: str, done: threading.Event, seen: list[tuple[float, int, str]]) -> None:
    """Polls /readyz every 0.1 s until `done`: (time, status, its "processes" check)."""
    while not done.is_set():
        status, checks = _readyz(url)
        seen.append((time.monotonic(), status, checks.get("processes", "")))
        time.sleep(0.1)


def test_bot_run_restarts_killed_processes_and_loses_nothing(tmp_path: Path) -> None:
    """kill -9 of the worker, then Rasa, then the scheduler, then one of the web's processes
    during a burst of webhooks: each is restarted, every message acknowledged and answered
    as often as without the kills, nothing sent twice, /readyz names the process while it
    is down (issue 15)."""
    bot = stand_in_rasa(tmp_path)
    port, rasa_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    var = tmp_path / "var"
    twilio = FakeProcess("testkit.fake_twilio", "--delay", "0.1")
    env = run_env(
        var,
        drop=NO_SERVICES,
        **twilio_env(twilio.url, url),
        NLU_TIMEOUT_MS="500",
        QUIET_HOURS="off",
        LOG_LEVEL="WARNING",
    )
    log = tmp_path / "run.log"
    command = [
        *bot,
        "run",
        "--port",
        str(port),
        "--rasa-port",
        str(rasa_port),
        "--web-workers",
        "2",
    ]
    watching = threading.Event()
    seen: list[tuple[float, int, str]] = []
    kills: dict[str, float] = {}
    plan = [
        Planned(at, sender, body)
        for at, sender, body in _restart_plan(RESTART_CONTACTS, RESTART_SECONDS)
    ]
    expected = len(RESTART_SCRIPT) and sum(RESTART_REPLIES.values())

    def kill(name: str) -> None:
        pid = json.loads((var / "processes.json").read_text())["processes"][name]["pid"]
        kills[name] = time.monotonic()
        os.kill(pid, signal.SIGKILL)

    web_killed: list[int] = []

    def kill_a_web_process() -> None:
        """One of gunicorn's processes (its master starts another): what it had spooled and
        acknowledged is stored by the other one or its successor (bot/spool.py)."""
        master = json.loads((var / "processes.json").read_text())["processes"]["web"]["pid"]
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        web_killed.append(int(children[0]))
        os.kill(int(children[0]), signal.SIGKILL)

    with at_exit(twilio.stop), bot_run(command, env, log) as run, at_exit(watching.set):
        assert wait_until(lambda: _readyz(url)[0] == 200, 60, process=run), log.read_text()
        states = json.loads((var / "processes.json").read_text())["processes"]
        assert sorted(states) == ["rasa-1", "scheduler-1", "web", "worker-1", "worker-2"], states
        # Two pollers: a restarted worker is down for about half a second.
        watchers = [
            threading.Thread(target=_watch, args=(url, watching, seen), daemon=True)
            for _ in range(2)
        ]
        for watcher in watchers:
            watcher.start()
            time.sleep(0.05)
        timers = [
            threading.Timer(RESTART_SECONDS * share, kill, args=(name,))
            for share, name in ((0.25, "worker-1"), (0.45, "rasa-1"), (0.65, "scheduler-1"))
        ]
        timers.append(threading.Timer(RESTART_SECONDS * 0.85, kill_a_web_process))
        for timer in timers:
            timer.start()
        started = time.monotonic()
        # Twilio's fallback: a refused (or unanswered) webhook is delivered again.
        outcomes = send(f"{url}/webhooks/twilio/messages", plan, ACCOUNT, retry=5)
        burst_ended = time.monotonic()
        total = expected * RESTART_CONTACTS
        answered = lambda: twilio.get("/_count")["sent"] >= total  # noqa: E731
        assert wait_until(answered, 60, interval=0.5), f"{twilio.get('/_count')} of {total}"
        drained = time.monotonic()
        time.sleep(2.0)  # anything sent twice would arrive now
        assert wait_until(lambda: _readyz(url)[0] == 200, 10)
        watching.set()
        for watcher in watchers:
            watcher.join()
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
        sent = twilio.get("/_received")["sent"]
    output = log.read_text()
    acks = Counter(o.status for o in outcomes)
    assert acks == {200: len(plan)}, acks  # every webhook acknowledged
    retried = sum(o.attempts > 1 for o in outcomes)
    per_contact = Counter(s["to"] for s in sent)
    assert len(per_contact) == RESTART_CONTACTS
    assert set(per_contact.values()) == {expected}, per_contact.most_common(3)  # none twice
    engine = create_engine(f"sqlite:///{var / 'bot.db'}")
    with Session(engine) as s:
        inbound = Counter(s.scalars(select(Message.status).where(Message.direction == "in")))
    engine.dispose()
    assert inbound == {"processed": len(plan)}, inbound
    for name, at in kills.items():
        down = [t for t, status, checks in seen if status == 503 and name in checks and t >= at]
        assert down, f"/readyz never named {name} after its kill"
        assert f"{name} (pid" in output and "killed by SIGKILL" in output, output
        assert f'bot_process_restarts_total{{process="{name}"}} 1.0' in metrics
    assert len(kills) == 3 and len(web_killed) == 1 and run.returncode == 0, output
    # The restarted worker-1 took back at once what it had claimed, not worker-2's sends
    # (claimed under their names; CLAIM_SECONDS is 120 s, the replies came within 60).
    assert "taking back what the previous worker held" in output, output
    assert "Traceback" not in output, output
    recovered = {
        name: max(t for t, status, checks in seen if t >= at and name in checks) - at
        for name, at in kills.items()
    }
    print(  # the README's figures
        f"\n{len(plan)} webhooks from {RESTART_CONTACTS} contacts in {burst_ended - started:.1f} s,"
        f" {len(kills)} kills and a web process's: {acks[200]} acknowledged"
        f" ({retried} after a retry),"
        f" {len(sent)} replies sent ({total} expected), lost {total - len(sent)},"
        f" duplicated {sum(n - expected for n in per_contact.values() if n > expected)};"
        f" /readyz named the killed process for "
        + ", ".join(f"{n} {s:.1f} s" for n, s in recovered.items())
        + f"; last reply {drained - burst_ended:.1f} s after the burst"
    )
    print(
        *(line for line in output.splitlines() if "taking back" in line or "spool" in line),
        sep="\n",
    )


def _restart_plan(contacts: int, seconds: float) -> list[tuple[float, str, str]]:
    """Each contact sends RESTART_SCRIPT, spread over `seconds`, contacts interleaved."""
    gap = seconds / len(RESTART_SCRIPT)
    return sorted(
        (n * gap / contacts + step * gap, f"+97798{n:08d}", body)
        for n in range(contacts)
        for step, body in enumerate(RESTART_SCRIPT)
    )


def _quiet_bot_run(
    tmp_path: Path, loads_until: Path | None = None
) -> tuple[list[str], str, FakeProcess, dict[str, str]]:
    """`bot run` with one web process and the stand-in Rasa (see stand_in_rasa), sending to
    a fake Twilio API in a process of its own (stop it), logging warnings only: the command,
    the service's URL, the fake and the environment."""
    bot = stand_in_rasa(tmp_path, loads_until=loads_until)
    port, rasa_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    twilio = FakeProcess("testkit.fake_twilio", "--delay", "0.05")
    env = run_env(
        tmp_path / "var", drop=NO_SERVICES, **twilio_env(twilio.url, url), LOG_LEVEL="WARNING"
    )
    command = [*bot, "run", "--port", str(port), "--rasa-port", str(rasa_port)]
    return [*command, "--web-workers", "1"], url, twilio, env


def test_bot_run_accepts_webhooks_while_rasa_loads_and_answers_once_it_has(
    tmp_path: Path,
) -> None:
    """The web starts without waiting for Rasa (issue 15: a second `make run` refused
    webhooks for the 29 s Rasa took to load): a webhook is stored while Rasa is still
    loading, and answered from Rasa's parse (not "try later") once Rasa answers."""
    from bot.core.messages import Language
    from nlu.catalogue import Catalogue

    go = tmp_path / "rasa-may-load"  # the stand-in "loads its model" until this exists
    command, url, twilio, env = _quiet_bot_run(tmp_path, loads_until=go)
    log = tmp_path / "run.log"
    question = Planned(0.0, "+9779811112222", "what are the steps", "SM" + "7" * 32)
    with at_exit(twilio.stop), bot_run(command, env, log) as run:
        webhook = f"{url}/webhooks/twilio/messages"
        stored = lambda: send(webhook, [question], ACCOUNT, timeout=2.0)[0].status == 200  # noqa: E731
        # Under the old order (the web after Rasa) nothing would answer: Rasa waits for us.
        assert wait_until(stored, 90, interval=0.1, process=run), log.read_text()
        rasa_port = command[command.index("--rasa-port") + 1]
        assert not wait_ready(f"http://127.0.0.1:{rasa_port}/", timeout=0.1)
        time.sleep(1.0)
        assert twilio.get("/_count")["sent"] == 0  # it waits in the inbox, not "try later"
        go.touch()
        replied = lambda: twilio.get("/_count")["sent"] >= 1  # noqa: E731
        assert wait_until(replied, 90, interval=0.2), log.read_text()
        [reply] = twilio.get("/_received")["sent"]
    answer = Catalogue.load().topics["steps"].answer[Language.EN].strip()
    assert str(reply["body"]).startswith(answer[:40]), reply


def test_two_sqlite_workers_share_the_contacts_and_answer_each_message_once(
    tmp_path: Path,
) -> None:
    """`bot run --workers 2` on the embedded default: each worker's inbound feed takes its
    share of the contacts (`--share 1/2`, `2/2`); every message is answered exactly once."""
    command, url, twilio, env = _quiet_bot_run(tmp_path)
    command += ["--workers", "2"]
    log = tmp_path / "run.log"
    questions = [Planned(i * 0.01, f"+97798200{i:05d}", "help", f"SM{i:032d}") for i in range(40)]
    with at_exit(twilio.stop), bot_run(command, env, log) as run:
        webhook = f"{url}/webhooks/twilio/messages"
        ready = lambda: send(webhook, questions[:1], ACCOUNT, timeout=2.0)[0].status == 200  # noqa: E731
        assert wait_until(ready, 90, interval=0.1, process=run), log.read_text()
        assert all(r.status == 200 for r in send(webhook, questions[1:], ACCOUNT, timeout=5.0))
        everyone = lambda: twilio.get("/_count")["sent"] >= len(questions)  # noqa: E731
        assert wait_until(everyone, 90, interval=0.2), log.read_text()
        time.sleep(1.0)  # a second answer to anyone would arrive meanwhile
        sent = twilio.get("/_received")["sent"]
        workers = [p for p in run_processes(run.pid) if "bot worker" in p]
    assert Counter(str(s["to"]) for s in sent) == Counter(q.sender for q in questions)
    assert sorted(w.split("--share ")[1].split()[0] for w in workers) == ["1/2", "2/2"]


def run_processes(session: int) -> list[str]:
    """The command lines of the processes in a session (`bot run` and what it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[3]) == session:  # after the state, ppid and pgrp comes the session
            found.append(cmdline)
    return found


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_bot_run_on_postgres_acknowledges_from_the_spool_and_answers_in_order(
    tmp_path: Path, database_url: str, deployment: dict[str, str]
) -> None:
    """`bot run` on PostgreSQL and Redis (as `make run-prod`): the web acknowledges once the
    message is in the spool file (INBOUND_SPOOL, set by `bot run`), flushed to the disk, and
    the mover stores it in PostgreSQL; with one of the web's processes killed mid-burst,
    every webhook is acknowledged, each message stored and answered once, in order."""
    command, url, twilio, env = _quiet_bot_run(tmp_path)
    env |= {key: deployment[key] for key in ("DATABASE_URL", "REDIS_URL", "QUEUE_NAME")}
    env.pop("INBOUND_SPOOL", None)  # `bot run`'s own default
    command = [*command[:-2], "--web-workers", "2", "--workers", "2"]
    log = tmp_path / "run.log"
    contacts, seconds = 60, 6.0
    plan = [Planned(at, sender, body) for at, sender, body in _restart_plan(contacts, seconds)]
    expected = sum(RESTART_REPLIES.values())
    var = Path(env["VAR_DIR"])

    def kill_a_web_process() -> None:
        master = json.loads((var / "processes.json").read_text())["processes"]["web"]["pid"]
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        os.kill(int(children[0]), signal.SIGKILL)

    with at_exit(twilio.stop), bot_run(command, env, log) as run:
        webhook = f"{url}/webhooks/twilio/messages"
        assert wait_until(lambda: _readyz(url)[0] == 200, 90, process=run), log.read_text()
        killer = threading.Timer(seconds * 0.5, kill_a_web_process)
        killer.start()
        outcomes = send(webhook, plan, ACCOUNT, retry=5)
        killer.join()
        total = expected * contacts
        answered = lambda: twilio.get("/_count")["sent"] >= total  # noqa: E731
        assert wait_until(answered, 90, interval=0.5), f"{twilio.get('/_count')} of {total}"
        time.sleep(1.5)  # anything sent twice would arrive now
        sent = twilio.get("/_received")["sent"]
    output = log.read_text()
    assert Counter(o.status for o in outcomes) == {200: len(plan)}, output
    assert (var / "spool" / "inbox.jsonl").exists()  # the spool took them
    per_contact: dict[str, list[str]] = {}
    for reply in sorted(sent, key=lambda r: float(r["at"])):
        per_contact.setdefault(str(reply["to"]), []).append(str(reply["body"]))
    assert len(per_contact) == contacts
    assert {len(bodies) for bodies in per_contact.values()} == {expected}  # none twice
    # In order: each contact's replies are the same sequence only when its messages were
    # handled in the order they came. A webhook the kill cut off came again a second later,
    # maybe after that contact's next one: those contacts are left out.
    retried = {o.planned.sender for o in outcomes if o.attempts > 1}
    kinds = Counter(tuple(b) for to, b in per_contact.items() if to not in retried)
    assert len(kinds) == 1, [(n, [b[:40] for b in k]) for k, n in kinds.items()]
    assert sum(kinds.values()) >= contacts - len(retried) > contacts // 2
    engine = create_engine(deployment["DATABASE_URL"])
    with Session(engine) as s:
        inbound = Counter(s.scalars(select(Message.status).where(Message.direction == "in")))
    engine.dispose()
    assert inbound == {"processed": len(plan)}, inbound
    assert "Traceback" not in output, output
