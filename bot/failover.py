"""Failover between routes: each route's health, shared by every worker and process.

A route (`sms:sparrow`, `whatsapp`...; bot/channel_order.py) goes down after
FAILOVER_AFTER consecutive failures that mean its provider is down (a `TransientSendError`:
connection refused, timeout, 5xx, WhatsApp unreachable, an Android pool with no live phone;
an adapter that raises one meaning "busy, not down" sets `exc.provider_down = False`).
While it is down the outbox sends what would have used it by the contact's next route in the
order; after FAILOVER_PROBE_SECONDS one send is let through as a probe, and its success
brings the route back up (a failure waits another FAILOVER_PROBE_SECONDS).

Where the state lives: the database (`route_health`, `route_events`), whatever REDIS_URL
says. Every process already shares it (SQLite in development, PostgreSQL in production,
Redis is optional), the dashboard and /readyz read the events from it, and it is written
only when something fails or changes state: each process reads the whole (tiny) table at
most once a second (`ttl`), so a send while everything is up costs no query.

The pure state machine is `Health` with `after_failure`/`after_success`; `Failover` keeps it
in the table, read-modify-write under the row's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.channel_order import Route, Routes
from bot.db.database import Database
from bot.db.models import RouteEvent, RouteHealth, utcnow
from bot.metrics import FAILOVERS, ROUTE_CHANGES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """One route's state: up (with its run of consecutive failures) or down since `since`,
    with its next probe at `next_probe_at`."""

    up: bool = True
    failures: int = 0
    since: datetime | None = None
    next_probe_at: datetime | None = None

    def probe_due(self, now: datetime) -> bool:
        """Down, and the time for a probe has come."""
        return not self.up and self.next_probe_at is not None and self.next_probe_at <= now


def after_failure(health: Health, now: datetime, after: int, probe: timedelta) -> Health:
    """The state after a failure that means the provider is down."""
    if not health.up:  # a failed probe (or a send that raced it): wait for the next one
        return replace(health, failures=health.failures + 1, next_probe_at=now + probe)
    failures = health.failures + 1
    if failures >= after:
        return Health(up=False, failures=failures, since=now, next_probe_at=now + probe)
    return replace(health, failures=failures)


def after_success(health: Health, now: datetime) -> Health:
    """The state after the provider took a message (or answered with a verdict on it)."""
    if not health.up:
        return Health(up=True, failures=0, since=now)
    return replace(health, failures=0)


def took_probe(health: Health, now: datetime, probe: timedelta) -> Health:
    """The state once a probe is let through: the next one waits a full period."""
    return replace(health, next_probe_at=now + probe)


def maybe_delivered(exc: BaseException) -> bool:
    """True when a failed send may still have reached the provider: such a message is not
    moved to another route unless the provider, asked (`find_sent`), says it lacks it.

    Only the adapter knows (`SendError.maybe_sent`: it sets False for a connection never
    opened or the provider's own error answer, True for a reply that timed out or a
    connection dropped after the request went out; bot/channels/transport.py). When it
    leaves it None, or the error is not a SendError, the answer is True: the safe side. A
    message that waits for its provider to come back is late; one moved when the provider
    had it is sent twice.
    """
    said = getattr(exc, "maybe_sent", None)
    return said if isinstance(said, bool) else True


class Failover:
    """The routes' shared health, the order, and what a switch writes down."""

    def __init__(
        self,
        db: Database,
        routes: Routes,
        after: int = 3,
        probe_seconds: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
        ttl: float = 1.0,
    ) -> None:
        self.db = db
        self.routes = routes
        self.after = after
        self.probe = timedelta(seconds=probe_seconds)
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._view: dict[str, Health] = {}
        self._read_at = -1e18
        self._logged: set[tuple[str, str, datetime | None]] = set()

    # -- reading --------------------------------------------------------------------------

    def view(self, fresh: bool = False) -> dict[str, Health]:
        """Every route's health (routes never seen failing are up), at most `ttl` old."""
        now = time.monotonic()
        with self._lock:
            if not fresh and now - self._read_at < self.ttl:
                return self._view
        view = read_health(self.db)
        with self._lock:
            self._view, self._read_at = view, now
        return view

    def health(self, route: Route) -> Health:
        """One route's health (cached)."""
        return self.view().get(str(route), Health())

    def down(self) -> frozenset[Route]:
        """The routes that are down now (cached)."""
        return frozenset(Route.parse(key) for key, h in self.view().items() if not h.up)

    def usable(self, route: Route) -> bool:
        """Up, or down with its probe due and this caller the one to send it."""
        health = self.health(route)
        if health.up:
            return True
        return health.probe_due(self.clock()) and self.take_probe(route)

    def next_probe(self, route: Route) -> datetime:
        """When a down route is tried again (now for a route that is up)."""
        return self.health(route).next_probe_at or self.clock()

    # -- writing --------------------------------------------------------------------------

    def take_probe(self, route: Route) -> bool:
        """Lets one send through to a down route whose probe is due; False if another
        worker took this probe first."""
        now = self.clock()
        with self.db.write() as session:
            taken = session.execute(
                update(RouteHealth)
                .where(RouteHealth.route == str(route), RouteHealth.up.is_(False))
                .where(RouteHealth.next_probe_at <= now)
                .values(next_probe_at=now + self.probe, updated_at=now)
            )
            won = bool(taken.rowcount)  # type: ignore[attr-defined]
        if won:
            log.info("route %s: probe send let through", route)
        self.view(fresh=True)
        return won

    def failed(self, route: Route, error: str) -> Health:
        """Records a failure that means the provider is down; returns the new state."""
        now = self.clock()
        before, after = self._change(route, error[:300], lambda h: after_failure(h, now, *self._p))
        if before.up and not after.up:
            log.warning(
                "route %s is down after %s consecutive failures (last: %s); sends move to the "
                "next route in CHANNEL_ORDER, a probe in %ss",
                route,
                after.failures,
                error[:200],
                int(self.probe.total_seconds()),
            )
            ROUTE_CHANGES.labels(str(route), "down").inc()
            self._event("down", route, detail=error[:300])
        return after

    def succeeded(self, route: Route) -> None:
        """Records that the provider took a message (or gave a verdict on it)."""
        cached = self.health(route)
        if cached.up and cached.failures == 0:
            return  # nothing to change: no write
        now = self.clock()
        before, after = self._change(route, None, lambda h: after_success(h, now))
        if not before.up and after.up:
            outage = (now - before.since).total_seconds() if before.since else 0.0
            log.warning(
                "route %s is back up (down for %.0f s); sends come back to it", route, outage
            )
            ROUTE_CHANGES.labels(str(route), "up").inc()
            self._event("up", route, detail=f"down for {outage:.0f} s")

    def switched(self, source: Route, target: Route, message_id: int) -> None:
        """Counts and records a message moved from a down route to `target`."""
        FAILOVERS.labels(str(source), str(target)).inc()
        outage = self.health(source).since
        key = (str(source), str(target), outage)
        if key not in self._logged:
            self._logged.add(key)
            log.warning(
                "route %s is down: sending by %s instead (message %s and others)",
                source,
                target,
                message_id,
            )
        table = RouteEvent.__table__
        dialect = postgresql if self.db.engine.dialect.name == "postgresql" else sqlite
        now = self.clock()
        statement = dialect.insert(table).values(
            kind="switch",
            route=str(source),
            to_route=str(target),
            outage=outage,
            count=1,
            created_at=now,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["kind", "route", "to_route", "outage"],
            set_={"count": table.c.count + 1, "created_at": now},
        )
        with self.db.begin() as conn:
            conn.execute(statement)

    @property
    def _p(self) -> tuple[int, timedelta]:
        return self.after, self.probe

    def _change(
        self, route: Route, error: str | None, change: Callable[[Health], Health]
    ) -> tuple[Health, Health]:
        now = self.clock()
        key = str(route)
        table = RouteHealth.__table__
        dialect = postgresql if self.db.engine.dialect.name == "postgresql" else sqlite
        with self.db.write() as session:
            session.execute(
                dialect.insert(table)
                .values(route=key, up=True, failures=0, since=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["route"])
            )
            row = session.scalars(
                select(RouteHealth).where(RouteHealth.route == key).with_for_update()
            ).one()
            before = Health(row.up, row.failures, row.since, row.next_probe_at)
            after = change(before)
            row.up, row.failures = after.up, after.failures
            row.since = after.since or row.since
            row.next_probe_at = after.next_probe_at
            if error is not None:
                row.last_error = error
            row.updated_at = now
        with self._lock:
            self._view = {**self._view, key: after}
        return before, after

    def _event(self, kind: str, route: Route, detail: str | None = None) -> None:
        with self.db.write() as session:
            session.add(
                RouteEvent(kind=kind, route=str(route), created_at=self.clock(), detail=detail)
            )


def read_health(db: Database) -> dict[str, Health]:
    """Every route's health as the table has it (a route never seen failing has no row)."""
    with db.read() as session:
        return {
            row.route: Health(row.up, row.failures, row.since, row.next_probe_at)
            for row in session.scalars(select(RouteHealth))
        }


def down_routes(db: Database) -> frozenset[Route]:
    """The routes down now (broadcast previews and fan-out skip them)."""
    return frozenset(Route.parse(key) for key, h in read_health(db).items() if not h.up)


@dataclass(frozen=True)
class RouteStatus:
    """One route as the dashboard and /readyz show it."""

    route: str
    up: bool
    since: datetime | None
    failures: int
    next_probe_at: datetime | None
    last_error: str | None


def statuses(db: Database) -> list[RouteStatus]:
    """Every route that ever failed, down ones first."""
    with db.read() as session:
        rows = session.scalars(select(RouteHealth).order_by(RouteHealth.route)).all()
        out = [
            RouteStatus(r.route, r.up, r.since, r.failures, r.next_probe_at, r.last_error)
            for r in rows
        ]
    return sorted(out, key=lambda s: s.up)


def recent_events(db: Database, limit: int = 10) -> list[RouteEvent]:
    """The latest switches and recoveries, newest first."""
    with db.read() as session:
        rows = session.scalars(
            select(RouteEvent).order_by(RouteEvent.created_at.desc(), RouteEvent.id.desc())
        ).all()[:limit]
        session.expunge_all()
        return list(rows)


def readiness(db: Database, order: tuple[Route, ...]) -> str:
    """/readyz's "channels": ok, "degraded: <down> (sending by <up>)", or "down: ..." when
    every route of CHANNEL_ORDER is down."""
    down = sorted(s.route for s in statuses(db) if not s.up)
    if not down:
        return "ok"
    working = [str(r) for r in order if str(r) not in down]
    if not working:
        return f"down: {', '.join(down)}"
    return f"degraded: {', '.join(down)} down (sending by {', '.join(working)})"


class RouteCollector:
    """`bot_route_up{route}` for /metrics, read from the shared table when scraped."""

    def __init__(self, db: Database, order: tuple[Route, ...]) -> None:
        self.db = db
        self.order = order

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "bot_route_up",
            "1 while a route (channel:provider) is up, 0 while down",
            labels=["route"],
        )
        health = read_health(self.db)
        for key in sorted({*(str(r) for r in self.order), *health}):
            up.add_metric([key], 1.0 if health.get(key, Health()).up else 0.0)
        yield up
