"""`bot run`: everything on one machine, supervised; Ctrl-C stops it all."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Callable

import click

from bot.cli.common import database, settings_or_exit
from bot.metrics import PROCESSES_FILE
from bot.processes import (
    Child,
    Process,
    Supervisor,
    answers,
    own_group,
    rasa_available,
    rasa_token,
    spawn_bot,
    spawn_rasa,
    stop,
    stop_requests,
    supervise,
    wait_until,
)
from bot.settings import Settings, setting_given

# How long `bot run` waits for the web to answer before it starts the workers and the
# scheduler all the same.
WEB_FIRST_FOR = 30.0


@click.command()
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--rasa-port", default=5005, show_default=True, type=int)
@click.option("--rasa-servers", default=1, show_default=True, type=int, help="Rasa processes")
@click.option("--web-workers", default=2, show_default=True, type=int, help="gunicorn processes")
@click.option(
    "--workers",
    default=lambda: default_workers(),
    show_default="2, or 1 on a one-CPU machine",
    type=int,
    help="`bot worker` processes (one uses at most one CPU: Python's global lock)",
)
@click.option("--schedulers", default=1, show_default=True, type=int, help="one is active")
@click.option("--create-database", is_flag=True, help="create the PostgreSQL database if missing")
def run(
    port: int,
    rasa_port: int,
    rasa_servers: int,
    web_workers: int,
    workers: int,
    schedulers: int,
    create_database: bool,
) -> None:
    """Runs everything on one machine: migrations, Rasa, web, worker and the broadcast
    scheduler. A process that dies is started again (with backoff); Ctrl-C, SIGTERM or
    SIGHUP stops it all.

    Rasa is started from `.venv-rasa` with `models/nlu.tar.gz` (`make train`) unless RASA_URL
    points at a server that is already running. The web starts at once, without waiting for
    Rasa to load its model, and the workers and the scheduler once the web answers (their
    start-up would share the CPU with the web's): webhooks are accepted within seconds, and
    the messages wait in the inbox until the worker, which starts handling them once Rasa
    answers, gets to them.
    The workers run at a lower CPU priority than the web (WORKER_NICE): when the machine is
    short of CPU, Twilio's webhooks are answered first and the replies trail. The NLU server
    runs at the workers' priority too: it works for them (measured at 300 msg/s: ack p99 70
    vs 99 ms at normal priority, no parse timing out either way).
    """
    from bot.db.migrate import create_database as create_missing
    from bot.db.migrate import upgrade

    settings = settings_or_exit()
    if create_database:
        create_missing(settings.database_url)
    upgrade(settings.database_url)
    children: list[Child] = []
    status: Supervisor | None = None
    started_rasa = False
    # From here Ctrl-C (or SIGTERM) is noted, not raised: every child started is stopped.
    with stop_requests() as stopping:
        try:
            env = dict(os.environ)
            # Everything `bot run` starts shares this machine's disk: the web acknowledges a
            # webhook once its message is in the spool there, on PostgreSQL too (bot/spool.py),
            # unless the environment or .env says otherwise.
            if not setting_given("INBOUND_SPOOL"):
                env["INBOUND_SPOOL"] = "true"
            nlu = ", ".join(settings.rasa_urls) or "off (no model: run `make train`)"
            if not settings.rasa_urls and rasa_available():
                ports = [rasa_port + n for n in range(max(1, rasa_servers))]
                # Rasa's HTTP API can replace the model: it answers only callers with this token.
                env["RASA_TOKEN"] = token = rasa_token(settings)
                for n, rasa in enumerate(ports, 1):
                    child = _rasa_child(f"rasa-{n}", rasa, token, settings.worker_nice)
                    child.spawn()  # loads its model while the rest starts ("starting" until then)
                    children.append(child)
                env["RASA_URL"] = nlu = ",".join(f"http://127.0.0.1:{p}" for p in ports)
                started_rasa = True
            # Every process writes its metrics here; /metrics on the web process reads them all.
            metrics_dir = settings.var_dir / "metrics"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            web = ["web", "--port", str(port), "--workers", str(web_workers)]
            healthz = f"http://127.0.0.1:{port}/healthz"
            web_child = _bot_child("web", web, env, ready=lambda: answers(healthz))
            rest = _workers_and_schedulers(settings, env, workers, schedulers, started_rasa)
            # /readyz names the processes not started yet as down until they are up.
            status = Supervisor([*children, web_child, *rest], settings.var_dir / PROCESSES_FILE)
            status.write_status()
            children.append(web_child)
            web_child.spawn()
            _first_admin(settings)  # while the web starts
            # The web first: the others' start-up (imports, Rasa's model) would share the CPU with
            # it, and webhooks wait in the inbox for them anyway.
            wait_until(
                lambda: stopping.is_set() or answers(healthz, timeout=0.5),
                WEB_FIRST_FOR,
                0.05,
                web_child.process,
            )
            for child in rest:
                if stopping.is_set():
                    break
                children.append(child)
                child.spawn()
        except BaseException:
            _stop_started(children, status)
            raise
        if stopping.is_set():
            _stop_started(children, status)
            sys.exit(0)
        mode = "Twilio" if settings.twilio_enabled else "console channel (no Twilio account set)"
        database = settings.database_url.split(":", 1)[0]
        queue = "redis" if settings.redis_url else "embedded"
        click.echo(
            f"service on http://127.0.0.1:{port}  ·  dashboard: /dashboard  ·  outbound: {mode}"
            f"  ·  NLU: {nlu}  ·  database: {database}  ·  queue: {queue}  ·  "
            f"{web_workers} web, {workers} worker, {schedulers} scheduler processes"
        )
        code = supervise(children, settings.var_dir / PROCESSES_FILE, stopping)
    sys.exit(code)


def _stop_started(children: list[Child], status: Supervisor | None) -> None:
    """Stops every child started so far (a start cut short by Ctrl-C or an error)."""
    stop([child.process for child in children if child.process is not None])
    if status is not None:
        status.remove_status()


def _workers_and_schedulers(
    settings: Settings, env: dict[str, str], workers: int, schedulers: int, started_rasa: bool
) -> list[Child]:
    """The `bot worker` and `bot scheduler` children, not started."""
    # A worker restarted after a crash takes back at once what the dead one held, instead of
    # after CLAIM_SECONDS. The one worker of an embedded SQLite database (which no other
    # machine's worker can share) takes back everything; beside other workers, a worker
    # claims its sends under a name of its own, unique to this `bot run`, and takes back what
    # was claimed under that name.
    sqlite = settings.database_url.startswith("sqlite")
    alone = workers <= 1 and sqlite
    # A worker waits for the Rasa we started to load its model before handling messages (they
    # wait in the inbox meanwhile) rather than answering "try again later".
    first = ["worker", "--wait-for-nlu"] if started_rasa else ["worker"]
    count = max(1, workers)
    children = []
    for n in range(1, count + 1):
        named = [] if alone else ["--name", f"{socket.gethostname()}:{os.getpid()}/worker-{n}"]
        # On SQLite each worker reads the waiting messages of its share of the contacts.
        share = ["--share", f"{n}/{count}"] if count > 1 and sqlite else []
        args = [*first, *named, *share]
        children.append(_bot_child(f"worker-{n}", args, env, restarted=[*args, "--after-crash"]))
    for n in range(1, max(1, schedulers) + 1):
        children.append(_bot_child(f"scheduler-{n}", ["scheduler"], env))
    return children


def default_workers() -> int:
    """Two workers where there are two CPUs or more: one worker process alone stops at one
    CPU, and two keep up with twice the messages (README: benchmark); a second one on a
    single CPU would only add its own overhead."""
    return 2 if (os.cpu_count() or 1) > 1 else 1


def _bot_child(
    name: str,
    args: list[str],
    env: dict[str, str],
    ready: Callable[[], bool] | None = None,
    restarted: list[str] | None = None,
) -> Child:
    """`bot ARGS` (`restarted`, if given, when it replaces one that died), in a process group
    of its own: Ctrl-C reaches only us, and we stop each child once (processes.supervise)."""

    def start(after_crash: bool) -> Process:
        return spawn_bot(restarted if after_crash and restarted else args, env, **own_group())

    return Child(name, start, ready, group=True)


def _rasa_child(name: str, port: int, token: str, nice: int = 0) -> Child:
    """A Rasa server we started: started (and restarted) without waiting for it (the others
    keep going meanwhile); ready when it answers. It runs at the workers' CPU priority
    (`nice`): it works for them, and the webhooks come first."""
    url = f"http://127.0.0.1:{port}/"
    return Child(
        name,
        lambda _: spawn_rasa(port, token, own_process_group=True, nice=nice),
        ready=lambda: answers(url),
        group=True,
    )


def _first_admin(settings: Settings) -> None:
    """A new installation gets one admin account, its password shown once, so the dashboard
    can be opened straight away; that password must be changed at the first sign-in."""
    from dashboard.accounts import FIRST_ADMIN, create_first_admin

    with database(settings) as db:
        password = create_first_admin(db)
    if password is not None:
        click.echo(
            f"first dashboard account: {FIRST_ADMIN}  password: {password}  "
            "(shown once; choose your own at the first sign-in)"
        )
