"""The embedded queue (Huey on SQLite): tasks by priority, and no key-value statements."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from huey import Huey

from bot.queue import SqliteQueueStorage


def _queue(tmp_path: Path) -> Huey:
    return Huey(
        "test",
        storage_class=SqliteQueueStorage,
        filename=str(tmp_path / "queue.db"),
        results=False,
        utc=True,
    )


def test_tasks_run_once_each_higher_priority_first(tmp_path: Path) -> None:
    huey = _queue(tmp_path)
    ran: list[str] = []

    @huey.task(priority=50)
    def send(name: str) -> None:
        ran.append(name)

    @huey.task(priority=100)
    def inbound(name: str) -> None:
        ran.append(name)

    send("send 1")
    inbound("inbound 1")
    send("send 2")
    inbound("inbound 2")
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    assert ran == ["inbound 1", "inbound 2", "send 1", "send 2"]
    assert huey.pending_count() == 0


def test_a_task_costs_no_key_value_statements(tmp_path: Path) -> None:
    """Huey reads the revocation keys before each task and deletes them after: here neither
    reaches SQLite, so a task is one enqueue and one dequeue."""
    huey = _queue(tmp_path)

    @huey.task()
    def job() -> None:
        pass

    statements: list[str] = []
    conn: sqlite3.Connection = huey.storage.conn
    conn.set_trace_callback(statements.append)
    job()
    task = huey.dequeue()
    assert task is not None
    huey.execute(task)
    conn.set_trace_callback(None)
    assert statements  # the trace sees the queue's statements
    assert not [s for s in statements if " kv " in f" {s.lower()} "]


def test_storing_a_result_revocation_or_lock_is_refused_by_name(tmp_path: Path) -> None:
    huey = _queue(tmp_path)

    @huey.task()
    def job() -> None:
        pass

    with pytest.raises(NotImplementedError, match="keeps no results, revocations or task locks"):
        job.revoke()
    with pytest.raises(NotImplementedError, match="'some-lock'"):
        huey.put_if_empty("some-lock", "1")
    assert not huey.is_revoked(job)
