"""The `bot` command: the single command-line entry to the service."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from bot.clitools import settings_or_exit
from bot.settings import PROJECT_ROOT, Settings, SettingsError

log = logging.getLogger("bot")


def _logging(level: str = "INFO", role: str | None = None) -> None:
    from bot import logs

    logs.configure(level, role=role)


@click.group()
@click.option(
    "--log-level", default=lambda: os.environ.get("LOG_LEVEL", "INFO"), show_default="INFO"
)
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Community awareness and feedback chatbot."""
    _logging(log_level, role=ctx.invoked_subcommand)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.option("--create", is_flag=True, help="create the PostgreSQL database if it is missing")
def db_upgrade(revision: str, create: bool) -> None:
    """Applies the database migrations."""
    from bot.db.migrate import create_database, upgrade

    settings = settings_or_exit()
    if create and create_database(settings.database_url):
        click.echo("database created")
    upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


DATA_OPTION = click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(path_type=Path, file_okay=False),
    help="content folder (default: data/)",
)


@main.group()
def nlu() -> None:
    """NLU training data and model commands."""


@nlu.command("build")
@click.option("--out", default="build/nlu", show_default=True, type=click.Path(path_type=Path))
@DATA_OPTION
def nlu_build(out: Path, data_dir: Path | None) -> None:
    """Checks the FAQ catalogue and writes Rasa's training data from it."""
    from sqlalchemy.exc import OperationalError

    from bot.core.content import ContentError
    from nlu.catalogue import Catalogue
    from nlu.training import database_examples, write_training_data

    try:
        catalogue = Catalogue.load(data_dir) if data_dir else Catalogue.load()
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None
    # Examples coordinators made in the dashboard's NLU review join the files' examples.
    try:
        extra = database_examples(settings_or_exit().database_url)
    except (OperationalError, SettingsError):
        extra = {}
    path = write_training_data(catalogue, out, extra)
    groups = [t.examples for t in catalogue.topics.values()]
    groups += [i.examples for i in catalogue.intents.values()]
    examples = sum(len(texts) for group in groups for texts in group.values())
    click.echo(
        f"{path}: {len(catalogue.topics)} FAQ topics, {len(catalogue.intents)} other intents, "
        f"{examples} examples"
    )


@nlu.command("eval")
@click.option("--rasa-port", default=5006, show_default=True, type=int)
def nlu_eval(rasa_port: int) -> None:
    """Scores the trained model on the held-out set (starts Rasa unless RASA_URL is set)."""
    from bot.core.faq import NluPolicy
    from nlu.catalogue import Catalogue
    from nlu.client import RasaClient
    from nlu.evaluate import evaluate, load_eval_set, report

    settings = settings_or_exit()
    rasa = None
    urls = list(settings.rasa_urls)
    token = settings.rasa_token
    if not urls:
        if not (RASA_BIN.exists() and MODEL.exists()):
            raise click.ClickException("no model: run `make train` first")
        token = rasa_token(settings)
        rasa = _start_rasa(rasa_port, token)
        urls = [f"http://127.0.0.1:{rasa_port}"]
    try:
        client = RasaClient(urls, timeout=10, token=token)
        tallies = evaluate(client.parse, set(Catalogue.load().topics), load_eval_set(), NluPolicy())
        click.echo(report(tallies))
    finally:
        if rasa is not None:
            _stop([rasa])


def _date(value: str | None) -> Any:
    """A --since date (YYYY-MM-DD, or a full ISO time) as an aware UTC datetime."""
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@contextlib.contextmanager
def _database() -> Iterator[Any]:
    """The configured database, disposed of when the command ends."""
    from bot.db.database import Database

    db = Database(settings_or_exit().database_url)
    try:
        yield db
    finally:
        db.dispose()


def _flow_files() -> Any:
    from bot.core.content import ContentError
    from flows.schema import FlowFiles

    try:
        return FlowFiles.load()
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def survey() -> None:
    """Surveys: check the definitions, list them, export results."""


@survey.command("check")
def survey_check() -> None:
    """Loads and validates every survey and the feedback flow (errors name file and line)."""
    files = _flow_files()
    for flow in [*files.surveys.values(), *([files.feedback] if files.feedback else [])]:
        click.echo(f"ok  {flow.key:<24} {flow.kind:<9} {len(flow.questions)} questions")


@survey.command("list")
def survey_list() -> None:
    """Lists surveys with their running version and number of responses."""
    from bot.surveys import read_book, response_count

    with _database() as db:
        book = read_book(db, _flow_files())
        click.echo(f"{'survey':<24} {'version':<8} {'questions':>9} {'responses':>9}")
        for flow in book.current.values():
            default = "  (default)" if flow.key == book.default_survey_key else ""
            click.echo(
                f"{flow.key:<24} {flow.version:<8} {len(flow.questions):>9} "
                f"{response_count(db, flow.key):>9}{default}"
            )


@survey.command("invite")
@click.argument("key")
@click.argument("phones", nargs=-1, required=True)
def survey_invite(key: str, phones: tuple[str, ...]) -> None:
    """Starts survey KEY for each of PHONES (contacts who have texted us or were imported)."""
    from sqlalchemy import select

    from bot.db.models import Contact
    from bot.phone import InvalidPhone, to_e164
    from bot.runtime import Runtime

    settings = settings_or_exit()
    runtime = Runtime(settings)
    try:
        for raw in phones:
            try:
                phone = to_e164(raw, settings.default_region)
            except InvalidPhone as exc:
                click.echo(f"{raw}: {exc}")
                continue
            with runtime.db.read() as session:
                contact_id = session.scalar(
                    select(Contact.id).where(Contact.phone == phone, Contact.simulated.is_(False))
                )
            outcome = "unknown contact" if contact_id is None else runtime.invite(contact_id, key)
            click.echo(f"{phone}: {outcome}")
    finally:
        runtime.close()


@survey.command("results")
@click.argument("key")
@click.option("--since", default=None, help="only responses started on or after this date")
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="file to write ('-' for standard output)",
)
def survey_results(key: str, since: str | None, csv_path: Path) -> None:
    """Writes one CSV row per response of survey KEY (streamed: constant memory)."""
    from datetime import timedelta

    from bot.surveys import read_book, write_results_csv

    ttl = timedelta(minutes=settings_or_exit().session_timeout_minutes)
    start = _date(since)
    with _database() as db:
        current = read_book(db, _flow_files()).current.get(key)
        if str(csv_path) == "-":
            count = write_results_csv(db, key, sys.stdout, current, start, ttl)
        else:
            with csv_path.open("w", newline="", encoding="utf-8") as out:
                count = write_results_csv(db, key, out, current, start, ttl)
    click.echo(f"{count} responses written", err=True)


@survey.command("summary")
@click.argument("key")
@click.option("--since", default=None, help="only responses started on or after this date")
def survey_summary(key: str, since: str | None) -> None:
    """Counts per option and the completion rate, per version of survey KEY."""
    from bot.core.messages import Language
    from bot.surveys import read_book, summarize

    start = _date(since)
    with _database() as db:
        book = read_book(db, _flow_files())
        free_text = frozenset(
            q.id
            for flow in book.versions.values()
            if flow.key == key
            for q in flow.questions
            if q.type == "text"
        )
        summaries = summarize(db, key, start, free_text)
    current = book.current.get(key)
    if current is None:
        raise click.ClickException(f"no survey {key!r} (see: bot survey list)")
    if not summaries:
        click.echo("no responses yet")
    for summary in summaries:
        flow = book.get(key, summary.version) or current
        click.echo(
            f"version {summary.version}: {summary.responses} responses, "
            f"{summary.completed} completed ({summary.completion_rate:.0%})"
        )
        for question in flow.questions:
            counts = summary.answers.get(question.id)
            if question.type == "text" or not counts:
                continue
            click.echo(f"  {question.id}")
            labels = {o.value: o.label for o in question.options}
            for value, n in counts.most_common():
                label = labels[value][Language.EN] if value in labels else value
                click.echo(f"    {n:>6}  {label}")


@main.group()
def broadcast() -> None:
    """Awareness broadcasts: create, preview, send, schedule, cancel, list."""


@contextlib.contextmanager
def _service() -> Iterator[Any]:
    """The wired service for one command; its refusals become clean command-line errors."""
    from bot.broadcasts.audience import AudienceError
    from bot.broadcasts.service import BroadcastError
    from bot.feedback import FeedbackError
    from bot.runtime import Runtime

    runtime = Runtime(settings_or_exit())
    try:
        yield runtime
    except (BroadcastError, AudienceError, FeedbackError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        runtime.close()


@broadcast.command("create")
@click.option("--title", required=True)
@click.option("--en", "body_en", required=True, help="the message in English")
@click.option("--ne", "body_ne", required=True, help="the message in Nepali")
@click.option("--group", "groups", multiple=True, help="only contacts in this group (repeatable)")
@click.option("--language", "languages", multiple=True, type=click.Choice(["en", "ne"]))
@click.option("--channel", "channels", multiple=True, type=click.Choice(["sms", "whatsapp"]))
@click.option("--district")
@click.option("--municipality")
@click.option("--ward")
@click.option("--at", "at", help="send once at this local time, e.g. '2026-12-06 08:00'")
@click.option("--every", help="recurring: 'sun 08:00', 'daily 07:00' or a crontab line")
@click.option("--survey", "survey_key", help="invite recipients into this survey")
@click.option("--template-en", help="approved WhatsApp template (ContentSid) in English")
@click.option("--template-ne", help="approved WhatsApp template (ContentSid) in Nepali")
@click.option("--by", "created_by", default="cli", show_default=True)
def broadcast_create(**options: Any) -> None:
    """Creates a draft broadcast and shows its preview (send or schedule it next)."""
    from datetime import datetime

    from bot.broadcasts.audience import Audience
    from bot.broadcasts.service import Draft, create, preview_of

    with _service() as runtime:
        audience = Audience.from_json(
            {
                "groups": list(options["groups"]),
                "languages": list(options["languages"]),
                "channels": list(options["channels"]),
                "district": options["district"],
                "municipality": options["municipality"],
                "ward": options["ward"],
            }
        )
        send_at = None
        if options["at"]:
            try:
                local = datetime.fromisoformat(options["at"])
            except ValueError:
                raise click.BadParameter(f"--at: not a date and time: {options['at']!r}") from None
            send_at = local if local.tzinfo else local.replace(tzinfo=runtime.settings.zone)
        schedule = "once" if send_at else "recurring" if options["every"] else "now"
        draft = Draft(
            title=options["title"],
            body_en=options["body_en"],
            body_ne=options["body_ne"],
            audience=audience,
            schedule=schedule,
            send_at=send_at,
            every=options["every"],
            survey_key=options["survey_key"],
            template_en=options["template_en"],
            template_ne=options["template_ne"],
        )
        broadcast_id = create(runtime, draft, created_by=options["created_by"])
        click.echo(f"broadcast {broadcast_id} created ({schedule}); preview:")
        for line in preview_of(runtime, broadcast_id).lines():
            click.echo(f"  {line}")
        verb = "send" if schedule == "now" else "schedule"
        click.echo(f"confirm with: bot broadcast {verb} {broadcast_id}")


@broadcast.command("preview")
@click.argument("broadcast_id", type=int)
def broadcast_preview(broadcast_id: int) -> None:
    """Recipients by channel and language, segments, cost, duration, who is skipped and why."""
    from bot.broadcasts.service import preview_of

    with _service() as runtime:
        for line in preview_of(runtime, broadcast_id).lines():
            click.echo(line)


def _confirm(broadcast_id: int, schedules: tuple[str, ...]) -> None:
    from bot.broadcasts.service import confirm, get

    with _service() as runtime:
        row = get(runtime, broadcast_id)
        if row.schedule not in schedules:
            hint = "send" if row.schedule == "now" else "schedule"
            raise click.ClickException(
                f"broadcast {broadcast_id} is '{row.schedule}': use bot broadcast {hint}"
            )
        click.echo(f"broadcast {broadcast_id}: {confirm(runtime, broadcast_id)}")


@broadcast.command("send")
@click.argument("broadcast_id", type=int)
def broadcast_send(broadcast_id: int) -> None:
    """Sends a draft now (the worker plans and sends it at the configured pace)."""
    _confirm(broadcast_id, ("now",))


@broadcast.command("schedule")
@click.argument("broadcast_id", type=int)
def broadcast_schedule(broadcast_id: int) -> None:
    """Hands a draft with --at or --every to the scheduler."""
    _confirm(broadcast_id, ("once", "recurring"))


@broadcast.command("cancel")
@click.argument("broadcast_id", type=int)
def broadcast_cancel(broadcast_id: int) -> None:
    """Cancels: nothing not yet handed to Twilio is sent."""
    from bot.broadcasts.service import cancel

    with _service() as runtime:
        canceled = cancel(runtime, broadcast_id)
    click.echo(f"broadcast {broadcast_id} canceled; {canceled} messages not sent")


@broadcast.command("list")
@click.option("--limit", default=20, show_default=True, type=int)
def broadcast_list(limit: int) -> None:
    """Broadcasts, newest first, with their delivery funnel and failure reasons."""
    from bot.broadcasts.service import funnel, list_broadcasts

    with _service() as runtime:
        for row in list_broadcasts(runtime, limit):
            when = row.cron or (row.send_at.isoformat() if row.send_at else "now")
            click.echo(f"{row.id:>5}  {row.status:<9} {row.schedule:<9} {when:<22} {row.title}")
            result = funnel(runtime, row.id)
            if result.total:
                stages = "  ".join(
                    f"{s} {result.statuses[s]}"
                    for s in (
                        "planned",
                        "dispatching",
                        "queued",
                        "sent",
                        "delivered",
                        "read",
                        "failed",
                        "undelivered",
                        "skipped",
                        "canceled",
                    )
                    if result.statuses[s]
                )
                click.echo(f"       {result.total} messages: {stages}")
            if result.errors:
                codes = ", ".join(f"{code}: {n}" for code, n in result.errors.most_common())
                click.echo(f"       failures by Twilio error code: {codes}")
            if result.skipped:
                reasons = ", ".join(f"{r}: {n}" for r, n in result.skipped.most_common())
                click.echo(f"       skipped: {reasons}")


@main.group()
def feedback() -> None:
    """Community feedback: list, change status, answer."""


@feedback.command("list")
@click.option("--status", default=None, help="new, in_review, answered or closed")
@click.option("--limit", default=50, show_default=True, type=int)
def feedback_list(status: str | None, limit: int) -> None:
    """The newest feedback first."""
    from sqlalchemy import select

    from bot.db.models import Feedback

    query = select(Feedback).order_by(Feedback.id.desc()).limit(limit)
    if status:
        query = query.where(Feedback.status == status)
    with _database() as db, db.read() as session:
        for item in session.scalars(query):
            click.echo(
                f"{item.reference}  {item.created_at:%Y-%m-%d %H:%M}  {item.status:<9} "
                f"{item.category:<10} {item.body[:60]!r}"
            )


@feedback.command("status")
@click.argument("reference")
@click.argument("status")
def feedback_status(reference: str, status: str) -> None:
    """Moves feedback REFERENCE to STATUS (new, in_review, answered, closed)."""
    from bot.feedback import set_status

    with _service() as runtime:
        set_status(runtime, reference, status)
    click.echo(f"{reference}: {status}")


@feedback.command("answer")
@click.argument("reference")
@click.argument("text")
@click.option("--by", default="cli", show_default=True, help="who answers")
def feedback_answer(reference: str, text: str, by: str) -> None:
    """Answers feedback REFERENCE with TEXT, sent to the person through the outbox."""
    from bot.feedback import answer

    with _service() as runtime:
        answered = answer(runtime, reference, text, by)
    click.echo(f"{reference}: answered; message {answered.message_id} queued for sending")


@main.group()
def faq() -> None:
    """FAQ content commands."""


@faq.command("report")
@DATA_OPTION
def faq_report(data_dir: Path | None) -> None:
    """Shows every FAQ answer's length, SMS encoding and segment count."""
    from bot.core.content import ContentError
    from bot.core.segments import count_segments
    from nlu.catalogue import Catalogue

    try:
        catalogue = Catalogue.load(data_dir) if data_dir else Catalogue.load()
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{'topic':<16} {'part':<7} {'lang':<4} {'chars':>5}  {'encoding':<8} {'segments':>8}"
    )
    for topic in catalogue.topics.values():
        parts = [("answer", topic.answer), ("more", topic.more or {})]
        for part, texts in parts:
            for language, text in texts.items():
                count = count_segments(text)
                click.echo(
                    f"{topic.key:<16} {part:<7} {language.value:<4} {len(text):>5}  "
                    f"{count.encoding:<8} {count.segments:>8}"
                )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per process")
def web(host: str, port: int, workers: int, threads: int) -> None:
    """Serves the web application (webhooks, simulator) under gunicorn."""
    from gunicorn.app.base import BaseApplication

    settings_or_exit()  # fail fast, naming the bad setting, before gunicorn forks

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("keepalive", 5)
            self.cfg.set("accesslog", None)

        def load(self) -> Any:
            from bot.app import create_app

            return create_app(settings_or_exit())

    _App().run()


@main.command()
@click.option("--sweep-every", default=10.0, show_default=True, help="seconds between sweeps")
def worker(sweep_every: float) -> None:
    """Runs the job queue consumer: handles inbound messages and sends the outbox.

    WORKER_CONCURRENCY threads handle messages; up to SEND_CONCURRENCY provider calls overlap.
    """
    from bot.runtime import Runtime

    settings = settings_or_exit()
    # Dozens of threads share the GIL here; a thread holding the database write gate must not
    # wait the default 5 ms for its turn, or every other writer on the machine waits too.
    sys.setswitchinterval(0.0005)
    if settings.worker_nice:
        # Webhook acknowledgements are the latency that matters; replies can trail by a few
        # milliseconds when the machine is busy (README: benchmark).
        os.nice(settings.worker_nice)
    runtime = Runtime(settings, background=True)
    stop = threading.Event()

    def sweeper() -> None:
        while not stop.is_set():
            try:
                report = runtime.sweep()
                if report.contacts or report.retries or report.reclaimed:
                    log.info("sweeper re-enqueued %s", report)
            except Exception:
                log.exception("sweep failed; trying again later")
            stop.wait(sweep_every)

    threading.Thread(target=sweeper, name="sweeper", daemon=True).start()
    consumer = runtime.huey.create_consumer(
        workers=settings.worker_concurrency,
        worker_type="thread",
        periodic=False,
        # Polling the embedded queue: an idle thread waits at most 100 ms for new work.
        initial_delay=0.01,
        backoff=1.5,
        max_delay=0.1,
        check_worker_health=True,
    )
    try:
        consumer.run()
    finally:
        stop.set()
        runtime.close()


@main.command()
@click.option("--poll", default=5.0, show_default=True, help="seconds between schedule checks")
def scheduler(poll: float) -> None:
    """Runs the broadcast scheduler. Start several: exactly one is active, the rest wait."""
    from bot.broadcasts.scheduler import BroadcastScheduler
    from bot.runtime import Runtime

    runtime = Runtime(settings_or_exit())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        BroadcastScheduler(runtime, poll_seconds=poll).run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        runtime.close()


@main.command()
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--rasa-port", default=5005, show_default=True, type=int)
@click.option("--rasa-servers", default=1, show_default=True, type=int, help="Rasa processes")
@click.option("--web-workers", default=2, show_default=True, type=int, help="gunicorn processes")
@click.option("--workers", default=1, show_default=True, type=int, help="`bot worker` processes")
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
    scheduler. Ctrl-C stops it all.

    Rasa is started from `.venv-rasa` with `models/nlu.tar.gz` (`make train`) unless RASA_URL
    points at a server that is already running.
    """
    from bot.db.migrate import create_database as create_missing
    from bot.db.migrate import upgrade

    settings = settings_or_exit()
    if create_database:
        create_missing(settings.database_url)
    upgrade(settings.database_url)
    _first_admin(settings)
    children: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    nlu = ", ".join(settings.rasa_urls) or "off (no model: run `make train`)"
    if not settings.rasa_urls and RASA_BIN.exists() and MODEL.exists():
        ports = [rasa_port + n for n in range(max(1, rasa_servers))]
        # Rasa's HTTP API can replace the model: it answers only callers with this token.
        env["RASA_TOKEN"] = token = rasa_token(settings)
        children += [_start_rasa(p, token) for p in ports]
        env["RASA_URL"] = nlu = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    # Every process writes its metrics here; /metrics on the web process reads them all.
    metrics_dir = settings.var_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    exe = [sys.executable, "-m", "bot"]
    commands = [[*exe, "web", "--port", str(port), "--workers", str(web_workers)]]
    commands += [[*exe, "worker"]] * max(1, workers)
    commands += [[*exe, "scheduler"]] * max(1, schedulers)
    for cmd in commands:
        children.append(subprocess.Popen(cmd, env=env))  # noqa: S603
    mode = "Twilio" if settings.twilio_enabled else "console channel (no Twilio account set)"
    database = settings.database_url.split(":", 1)[0]
    queue = "redis" if settings.redis_url else "embedded"
    click.echo(
        f"service on http://127.0.0.1:{port}  ·  dashboard: /dashboard  ·  outbound: {mode}"
        f"  ·  NLU: {nlu}  ·  database: {database}  ·  queue: {queue}  ·  "
        f"{web_workers} web, {workers} worker, {schedulers} scheduler processes"
    )
    sys.exit(_supervise(children))


def _first_admin(settings: Settings) -> None:
    """A new installation gets one admin account, its password shown once, so the dashboard
    can be opened straight away; that password must be changed at the first sign-in."""
    from sqlalchemy import func, select

    from bot.db.database import Database
    from bot.db.models import User
    from dashboard.accounts import create_user

    db = Database(settings.database_url)
    try:
        with db.read() as session:
            if session.scalar(select(func.count()).select_from(User)):
                return
        password = secrets.token_urlsafe(12)
        create_user(
            db,
            "admin@example.org",
            "admin",
            password,
            name="Administrator",
            must_change_password=True,
        )
    finally:
        db.dispose()
    click.echo(
        f"first dashboard account: admin@example.org  password: {password}  "
        "(shown once; choose your own at the first sign-in)"
    )


RASA_BIN = PROJECT_ROOT / ".venv-rasa" / "bin" / "rasa"
MODEL = PROJECT_ROOT / "models" / "nlu.tar.gz"


def rasa_command(port: int, token: str) -> list[str]:
    """`rasa run` on 127.0.0.1:port with the trained model; its HTTP API wants `token`.

    Without `--auth-token` anyone who reaches the port could replace the model (`PUT /model`).
    """
    return [str(RASA_BIN), "run", "--enable-api", "--auth-token", token,
            "-i", "127.0.0.1", "-p", str(port), "--model", str(MODEL), "--quiet"]  # fmt: skip


def rasa_token(settings: Settings) -> str:
    """RASA_TOKEN, or a new random one for the Rasa servers this command starts."""
    return settings.rasa_token or secrets.token_urlsafe(32)


def _start_rasa(port: int, token: str) -> subprocess.Popen[bytes]:
    """Starts Rasa's server on 127.0.0.1 with the trained model and waits until it answers."""
    rasa = subprocess.Popen(rasa_command(port, token), cwd=PROJECT_ROOT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    click.echo(f"starting Rasa on {url} …")
    if not _wait_until_up(url, rasa, timeout=180):
        _stop([rasa])
        raise click.ClickException("Rasa did not start; see its output above")
    return rasa


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Polls Rasa's status endpoint until it answers, the process dies or time runs out."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/", timeout=1):  # noqa: S310 - loopback
                return True
        except OSError:
            time.sleep(0.5)
    return False


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Waits until a child exits or we are told to stop, then stops every child."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    while not stopping.is_set():
        for child in children:
            if child.poll() is not None:
                log.error("%s exited with %s; stopping", child.args, child.returncode)
                code = child.returncode or 1
                stopping.set()
        stopping.wait(0.5)
    _stop(children)
    return code


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Asks every child to stop, then kills those still running after 15 s."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    main()


def _register_plugins() -> None:
    """Command groups that live beside their packages."""
    from bot.personal_data.cli import contacts, retention
    from dashboard.cli import users

    main.add_command(users)
    main.add_command(contacts)
    main.add_command(retention)


_register_plugins()
