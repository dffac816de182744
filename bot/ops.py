"""Operations endpoints: /readyz (database, queue, NLU reachable) and /metrics (Prometheus).

Metrics from every process on the machine (gunicorn workers, `bot worker`, the scheduler)
are gathered through prometheus_client's multiprocess mode when PROMETHEUS_MULTIPROC_DIR is
set (`bot run` and the Procfile set it); counts by message status and the queue depth are
read from the database and the queue when scraped.

Both answer only loopback clients, or anyone with `Authorization: Bearer <OPS_TOKEN>` when
OPS_TOKEN is set; everyone else gets a 404 (they say which dependencies run and how busy the
service is). Behind a trusted proxy the client's address is the forwarded one, so a remote
client through the proxy is not loopback. Metric labels are bounded: the matched route rule,
never the requested path.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select, text

from bot.backlog import read_backlog
from bot.db.models import BroadcastRun, Message
from bot.failover import RouteCollector, readiness
from bot.metrics import (
    FAILOVERS,
    INBOUND,
    NLU_SECONDS,
    ROUTE_CHANGES,
    SENT,
    WEBHOOK_SECONDS,
    read_process_states,
)

if TYPE_CHECKING:
    from bot.runtime import Runtime

bp = Blueprint("ops", __name__)
BANNER_SECONDS = 5.0  # how stale the dashboard's "behind" banner may be
UNMATCHED = "unmatched"


class StateCollector:
    """Gauges read when scraped: messages by direction and status, queue depth, runs."""

    def __init__(self, runtime: Runtime, ttl: float = 10.0) -> None:
        self.runtime = runtime
        self.ttl = ttl
        self._cached: tuple[float, list[Any]] = (0.0, [])

    def collect(self) -> Iterator[Any]:
        now = time.monotonic()
        if now - self._cached[0] > self.ttl:
            self._cached = (now, self._read())
        yield from self._cached[1]

    def _read(self) -> list[Any]:
        messages = GaugeMetricFamily(
            "bot_messages", "Messages by direction and status", labels=["direction", "status"]
        )
        runs = GaugeMetricFamily(
            "bot_broadcast_runs", "Broadcast runs by status", labels=["status"]
        )
        with self.runtime.db.read() as session:
            for direction, status, count in session.execute(
                select(Message.direction, Message.status, func.count()).group_by(
                    Message.direction, Message.status
                )
            ):
                messages.add_metric([direction, status], count)
            for status, count in session.execute(
                select(BroadcastRun.status, func.count()).group_by(BroadcastRun.status)
            ):
                runs.add_metric([status], count)
        depth = GaugeMetricFamily("bot_queue_depth", "Jobs waiting in the job queue")
        depth.add_metric([], float(self.runtime.huey.pending_count()))
        backlog = read_backlog(self.runtime.db, self.runtime.clock())
        waiting = GaugeMetricFamily(
            "bot_queue_waiting_messages",
            "Messages waiting: inbound not handled yet, outbound due and not sent yet",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "bot_queue_oldest_age_seconds",
            "Age of the oldest message waiting in each queue (0 when none waits)",
            labels=["queue"],
        )
        for name, queue in (("inbound", backlog.inbound), ("outbox", backlog.outbox)):
            waiting.add_metric([name], float(queue.waiting))
            age.add_metric([name], queue.oldest_seconds)
        return [messages, runs, depth, waiting, age]


class ProcessCollector:
    """`bot run`'s processes as its supervisor last wrote them: restarts and whether each is
    up (nothing when no `bot run` supervises this installation)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        states = read_process_states(self.runtime.settings.var_dir)
        if states is None:
            return
        restarts = CounterMetricFamily(
            "bot_process_restarts",
            "Processes `bot run` started again after they died",
            labels=["process"],
        )
        up = GaugeMetricFamily("bot_process_up", "1 while the process runs", labels=["process"])
        for name, state in sorted(states.items()):
            restarts.add_metric([name], float(state.get("restarts") or 0))
            up.add_metric([name], 1.0 if state.get("state") == "up" else 0.0)
        yield restarts
        yield up


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (also written as ::ffff:127.x.x.x); False otherwise."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _has_ops_token(token: str | None) -> bool:
    if not token:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


@bp.before_request
def _operators_only() -> None:
    """Loopback clients, or the bearer of OPS_TOKEN; anyone else is told nothing is here."""
    runtime: Runtime = current_app.extensions["bot"]
    if not (is_loopback(request.remote_addr) or _has_ops_token(runtime.settings.ops_token)):
        abort(404)


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database, the queue and (if configured) an NLU server answer and every
    process `bot run` supervises is up; else 503, naming what is down."""
    runtime: Runtime = current_app.extensions["bot"]
    checks: dict[str, str] = {}
    try:
        with runtime.db.begin_read() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        runtime.huey.pending_count()
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"down: {type(exc).__name__}"
    if runtime.nlu is not None:
        up = runtime.nlu.healthy()
        checks["nlu"] = f"ok ({up}/{len(runtime.nlu.urls)} servers)" if up else "down"
    else:
        checks["nlu"] = "off"
    states = read_process_states(runtime.settings.var_dir)
    if states is None:
        checks["processes"] = "off"  # not under `bot run` (Procfile, systemd, tests)
    else:
        down = sorted(name for name, state in states.items() if state.get("state") != "up")
        checks["processes"] = f"down: {', '.join(down)}" if down else f"ok ({len(states)})"
    # Channel failover (bot/failover.py): "degraded" while a route is down and another
    # carries its messages is still ready; every route of CHANNEL_ORDER down is not.
    checks["channels"] = readiness(runtime.db, runtime.routes.order)
    ready = all(v.startswith(("ok", "off", "degraded")) for v in checks.values())
    # Behind (BACKLOG_MESSAGES / BACKLOG_SECONDS, bot/backlog.py) is said, not a reason to be
    # unready: the web keeps storing webhooks, and a balancer taking it out would lose them
    # rather than speed the worker up.
    checks["backlog"] = backlog_check(runtime)
    # Providers' credit balances (issue 11): shown, never a reason to be unready.
    balances = {
        f"{name}_balance": route.balance.summary()
        for name, route in runtime.outbox.routes.items()
        if hasattr(route, "balance")
    }
    return jsonify(ready=ready, **checks, **balances), 200 if ready else 503


def backlog_check(runtime: Runtime) -> str:
    """`ok: ...` or `behind: ...` with both queues' waiting counts and oldest ages."""
    try:
        backlog = read_backlog(runtime.db, runtime.clock())
    except Exception as exc:  # the database check above says more
        return f"unknown: {type(exc).__name__}"
    settings = runtime.settings
    if backlog.behind(settings.backlog_messages, settings.backlog_seconds):
        return (
            f"behind: {backlog.summary()} (BACKLOG_MESSAGES={settings.backlog_messages}, "
            f"BACKLOG_SECONDS={settings.backlog_seconds})"
        )
    return f"ok: {backlog.summary()}"


@bp.app_context_processor
def service_behind() -> dict[str, str | None]:
    """For the dashboard's pages (its base template shows it on every page): the backlog
    while the worker is behind, else None. Read at most every few seconds per process."""
    if request.blueprint != "dashboard":
        return {}
    runtime: Runtime = current_app.extensions["bot"]
    cached = current_app.extensions.get("bot_backlog_banner")
    now = time.monotonic()
    if cached is None or now - cached[0] > BANNER_SECONDS:
        check = backlog_check(runtime)
        cached = (now, check.removeprefix("behind: ") if check.startswith("behind") else None)
        current_app.extensions["bot_backlog_banner"] = cached
    return {"service_behind": cached[1]}


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    runtime: Runtime = current_app.extensions["bot"]
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:  # one process (tests, a single web process): its own metrics
        for own in (WEBHOOK_SECONDS, NLU_SECONDS, INBOUND, SENT, FAILOVERS, ROUTE_CHANGES):
            registry.register(own)
    collector = current_app.extensions.setdefault("bot_state_collector", StateCollector(runtime))
    registry.register(collector)
    registry.register(ProcessCollector(runtime))
    registry.register(RouteCollector(runtime.db, runtime.routes.order))
    # A provider's own gauges (issue 11: the Android gateway's phones), read at each scrape.
    for route in runtime.outbox.routes.values():
        if (own_collector := getattr(route, "collector", None)) is not None:
            registry.register(own_collector)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Any) -> None:
    """Registers the endpoints and times the webhooks."""
    app.register_blueprint(bp)

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        if request.path.startswith("/webhooks/") and hasattr(g, "started"):
            # The route rule, not the path: random URLs must not add label values.
            rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            WEBHOOK_SECONDS.labels(rule, str(response.status_code)).observe(
                time.perf_counter() - g.started
            )
        return response
