"""The SQLite write gate lets webhooks go first (bot/db/gate.py), and the web stores the
webhooks of many request threads in one transaction (bot/inbox.py AcceptBatcher).

Issue 15: at 300 msg/s on `make run`, with the worker far behind, the worker's writes held
the gate about 70 % of the time and acknowledgements waited seconds behind them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

import bot.db.gate as gate_module
from bot.core.messages import Channel, Inbound
from bot.db.database import Database
from bot.db.gate import WriteGate
from bot.db.models import Message, utcnow
from bot.inbox import AcceptBatcher


def test_a_yielding_writer_steps_aside_while_a_webhook_waits(tmp_path: Path) -> None:
    """Two processes' gates on one file (two objects: two open files, as two processes have).
    The web holds the gate and a second webhook thread waits; the worker, arriving, lets the
    waiting webhook in before it takes its own turn."""
    path = tmp_path / "bot.db.write-lock"
    web = WriteGate(path, first=True)
    worker = WriteGate(path)
    order: list[str] = []
    web.__enter__()  # a webhook is writing
    assert worker.webhook_waiting()

    def webhook() -> None:
        with web:
            order.append("webhook")

    def worker_write() -> None:
        with worker:
            order.append("worker")

    waiting_webhook = threading.Thread(target=webhook)
    waiting_webhook.start()
    time.sleep(0.05)  # the second webhook is queued behind the first
    late_worker = threading.Thread(target=worker_write)
    late_worker.start()
    time.sleep(0.01)
    web.__exit__(None, None, None)
    waiting_webhook.join(5)
    late_worker.join(5)
    assert order == ["webhook", "worker"]
    assert not worker.webhook_waiting()
    web.close()
    worker.close()


def test_a_yielding_writer_is_not_starved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhooks waiting all the time: the worker steps aside YIELD_FOR, then takes its turn."""
    monkeypatch.setattr(gate_module, "YIELD_FOR", 0.1)
    path = tmp_path / "bot.db.write-lock"
    web = WriteGate(path, first=True)
    worker = WriteGate(path)
    web._raise_flag()  # a webhook says it waits, and keeps saying so
    try:
        started = time.monotonic()
        with worker:
            waited = time.monotonic() - started
        assert 0.1 <= waited < 2.0
        assert worker.yielded_seconds >= 0.1
    finally:
        web._lower_flag()
        web.close()
        worker.close()


def test_without_webhooks_a_writer_goes_at_once(tmp_path: Path) -> None:
    worker = WriteGate(tmp_path / "bot.db.write-lock")
    started = time.monotonic()
    with worker:
        pass
    assert time.monotonic() - started < 0.05 and worker.yielded_seconds == 0
    worker.close()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url, first=True)
    yield db
    db.engine.dispose()


def test_webhooks_of_many_threads_are_stored_in_fewer_transactions(database: Database) -> None:
    transactions = []
    event.listen(database.engine, "commit", lambda conn: transactions.append(1))
    batcher = AcceptBatcher(database, phone_key=None)
    results = []

    def webhook(n: int) -> None:
        inbound = Inbound(Channel.SMS, f"+97798{n:08d}", "hi", provider_id=f"SMbatch{n}")
        results.append(batcher.accept(inbound, False, utcnow()))

    threads = [threading.Thread(target=webhook, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    batcher.close()
    assert len(results) == 64 and not any(r.duplicate for r in results)
    assert len({r.message_id for r in results}) == 64
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 64
    assert len(transactions) < 64  # whatever waited together was committed together


def test_a_webhook_that_cannot_be_stored_fails_alone(database: Database) -> None:
    batcher = AcceptBatcher(database, phone_key=None)
    good = Inbound(Channel.SMS, "+9779800000001", "hi", provider_id="SMgood")
    bad = Inbound(Channel.SMS, "+9779800000002", "hi", provider_id="SM" + "x" * 500)
    outcomes: dict[str, object] = {}

    def webhook(inbound: Inbound) -> None:
        try:
            outcomes[inbound.provider_id or ""] = batcher.accept(inbound, False, utcnow())
        except Exception as exc:
            outcomes[inbound.provider_id or ""] = exc

    threads = [threading.Thread(target=webhook, args=(i,)) for i in (bad, good)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    batcher.close()
    if database.is_sqlite:  # SQLite does not enforce VARCHAR lengths: both are stored
        return
    assert isinstance(outcomes[bad.provider_id or ""], Exception)
    assert not isinstance(outcomes["SMgood"], Exception)
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 1
