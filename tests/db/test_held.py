"""Database.begin_held: a writing thread keeps its SQLite connection between transactions;
a failed transaction rolls back and drops it; dispose closes what threads hold."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from bot.db.database import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'held.db'}")
    with database.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return database


def count(db: Database) -> int:
    with db.begin_read() as conn:
        return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())


def test_a_thread_keeps_one_connection_and_its_writes_commit(db: Database) -> None:
    seen: list[Connection] = []
    for n in range(3):
        with db.begin_held() as conn:
            conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            seen.append(conn)
    assert seen[0] is seen[1] is seen[2]
    assert count(db) == 3
    db.dispose()
    assert seen[0].closed


def test_a_failed_transaction_rolls_back_and_the_next_gets_a_new_connection(
    db: Database,
) -> None:
    with pytest.raises(ZeroDivisionError), db.begin_held() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        failed = conn
        1 / 0  # noqa: B018
    assert failed.closed and count(db) == 0
    with db.begin_held() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
        assert conn is not failed
    assert count(db) == 1
    db.dispose()


def test_threads_hold_connections_of_their_own(db: Database) -> None:
    held: dict[str, Connection] = {}

    def write(name: str) -> None:
        with db.begin_held() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            held[name] = conn

    threads = [threading.Thread(target=write, args=(str(i),)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert held["0"] is not held["1"] and count(db) == 2
    db.dispose()
    assert held["0"].closed and held["1"].closed


def test_held_reads_keep_their_own_connection_see_new_commits_and_hold_no_snapshot(
    db: Database,
) -> None:
    """A handler thread's read connection is kept apart from its write connection, and
    between reads it holds no transaction: it sees what others commit, and a checkpoint can
    copy the whole WAL."""
    with db.begin_read(held=True) as first:
        assert first.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
    with db.begin_held() as writer:
        writer.execute(text("INSERT INTO t VALUES (1)"))
        assert writer is not first
    with db.begin_read(held=True) as again:
        assert again is first
        assert again.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    plain = sqlite3.connect(db.url.removeprefix("sqlite:///"))
    busy, _log, _copied = plain.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    plain.close()
    assert busy == 0
    db.dispose()
    assert first.closed
