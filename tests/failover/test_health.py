"""The routes' health: the state machine (pure) and its shared table, with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from bot.channel_order import Route, Routes, parse_order
from bot.channels.base import TransientSendError
from bot.db.database import Database
from bot.db.models import RouteEvent
from bot.failover import (
    Failover,
    Health,
    after_failure,
    after_success,
    maybe_delivered,
    readiness,
)
from bot.metrics import FAILOVERS, ROUTE_CHANGES
from tests.support.clock import FakeClock

T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
PROBE = timedelta(seconds=60)
SPARROW = Route("sms", "sparrow")


def test_a_route_goes_down_after_the_set_number_of_consecutive_failures() -> None:
    health = Health()
    health = after_failure(health, T0, 3, PROBE)
    health = after_failure(health, T0, 3, PROBE)
    assert health.up and health.failures == 2
    assert after_success(health, T0) == Health(failures=0)  # a success breaks the run
    for _ in range(3):
        health = after_failure(health, T0, 3, PROBE)
    assert not health.up and health.since == T0 and health.next_probe_at == T0 + PROBE


def test_a_down_route_is_probed_and_comes_back() -> None:
    down = Health(up=False, failures=3, since=T0, next_probe_at=T0 + PROBE)
    assert not down.probe_due(T0 + timedelta(seconds=59))
    assert down.probe_due(T0 + PROBE)
    failed_probe = after_failure(down, T0 + PROBE, 3, PROBE)
    assert not failed_probe.up and failed_probe.next_probe_at == T0 + 2 * PROBE
    assert failed_probe.since == T0  # still the same outage
    back = after_success(failed_probe, T0 + 2 * PROBE)
    assert back.up and back.failures == 0 and back.since == T0 + 2 * PROBE


def _timeout() -> TransientSendError:
    try:
        try:
            raise requests.ReadTimeout("read timed out")
        except requests.ReadTimeout as exc:
            raise TransientSendError("Sparrow unreachable") from exc
    except TransientSendError as error:
        return error


def _refused() -> TransientSendError:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise TransientSendError("Sparrow unreachable") from exc
    except TransientSendError as error:
        return error


def test_only_the_adapters_word_lets_a_message_move() -> None:
    # The adapter says (tests/channels/*/test_maybe_sent.py show each one saying it).
    assert maybe_delivered(TransientSendError("phone p1 may have it", maybe_sent=True))
    assert not maybe_delivered(TransientSendError("Sparrow HTTP 503: down", maybe_sent=False))
    said = _timeout()
    said.maybe_sent = False
    assert not maybe_delivered(said)
    # An adapter that does not say is taken at its worst, whatever the cause looks like:
    # the message waits for its provider rather than risk a second copy.
    assert maybe_delivered(TransientSendError("Sparrow HTTP 503: down"))
    assert maybe_delivered(_refused())
    assert maybe_delivered(_timeout())
    assert maybe_delivered(RuntimeError("not even a SendError"))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def failover(db: Database, clock: FakeClock) -> Failover:
    routes = Routes(parse_order("sms:sparrow,sms"), frozenset({"sparrow"}), known=True)
    return Failover(db, routes, after=3, probe_seconds=60, clock=clock, ttl=0)


def test_health_is_shared_through_the_table(db: Database) -> None:
    clock = FakeClock(T0)
    one, other = failover(db, clock), failover(db, clock)  # two workers
    before = ROUTE_CHANGES.labels("sms:sparrow", "down")._value.get()
    one.failed(SPARROW, "Sparrow HTTP 503")
    other.failed(SPARROW, "Sparrow HTTP 503")
    assert one.usable(SPARROW)
    one.failed(SPARROW, "Sparrow HTTP 503")
    assert not other.usable(SPARROW) and other.down() == {SPARROW}
    assert ROUTE_CHANGES.labels("sms:sparrow", "down")._value.get() == before + 1
    assert readiness(db, parse_order("sms:sparrow,sms")).startswith(
        "degraded: sms:sparrow down (sending by sms)"
    )
    assert readiness(db, parse_order("sms:sparrow")) == "down: sms:sparrow"
    clock.advance(60)
    # The probe is due: exactly one of the workers lets one send through.
    assert [one.usable(SPARROW), other.usable(SPARROW), one.usable(SPARROW)].count(True) == 1
    other.succeeded(SPARROW)
    assert one.usable(SPARROW) and one.down() == frozenset()
    assert readiness(db, parse_order("sms:sparrow,sms")) == "ok"
    with db.read() as session:
        kinds = [e.kind for e in session.query(RouteEvent).order_by(RouteEvent.id)]
    assert kinds == ["down", "up"]


def test_switches_are_counted_once_per_pair_and_outage(db: Database) -> None:
    clock = FakeClock(T0)
    health = failover(db, clock)
    for _ in range(3):
        health.failed(SPARROW, "refused")
    before = FAILOVERS.labels("sms:sparrow", "sms")._value.get()
    for message_id in range(5):
        health.switched(SPARROW, Route("sms"), message_id)
    assert FAILOVERS.labels("sms:sparrow", "sms")._value.get() == before + 5
    with db.read() as session:
        [switch] = session.query(RouteEvent).filter_by(kind="switch").all()
    assert (switch.route, switch.to_route, switch.count) == ("sms:sparrow", "sms", 5)
