"""The worker's group commits hand the SQLite write gate to a waiting webhook mid-batch
(bot/inbox.py GroupCommitter): turns already written are committed, the rest go in the next
transaction, and every turn still gets its own outcome. On PostgreSQL they lock contacts in
one order, and a transaction rolled back to break a deadlock is written again."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from bot import inbox
from bot.inbox import GroupCommitter, _Conflict


class Recorder:
    """A database whose transactions are recorded: which turns each one wrote."""

    def __init__(self, waiting: bool, fail_in: int | None = None, deadlocks: int = 0) -> None:
        self.waiting = waiting
        self.fail_in = fail_in  # the transaction (0-based) whose commit fails
        self.deadlocks = deadlocks  # how many transactions PostgreSQL rolls back first
        self.transactions: list[list[int]] = []
        self.committed: list[list[int]] = []

    @contextlib.contextmanager
    def begin(self) -> Iterator[list[int]]:
        written: list[int] = []
        self.transactions.append(written)
        yield written
        if self.fail_in == len(self.transactions) - 1:
            raise OSError("disk I/O error")
        if self.deadlocks:
            self.deadlocks -= 1
            raise Deadlock
        self.committed.append(written)

    begin_held = begin  # the committer thread's own connection (Database.begin_held)

    def webhook_waiting(self) -> bool:
        return self.waiting


class Deadlock(Exception):
    """What SQLAlchemy raises for PostgreSQL's "deadlock detected": the driver's error, with
    its SQLSTATE, as `orig`."""

    orig = SimpleNamespace(sqlstate="40P01")


class Processor:
    def __init__(self, db: Recorder) -> None:
        self.db = db

    def write_turn(self, conn: list[int], contact: Any, message_id: int | None, turn: Any) -> Any:
        if turn == "conflict":
            raise _Conflict
        conn.append(int(message_id or 0))
        return [message_id]


def commit_all(db: Recorder, turns: list[str], contacts: list[int] | None = None) -> list[Any]:
    """Commits one batch of `turns` (the n-th is message n, of contact `contacts[n]`)."""
    committer = GroupCommitter(Processor(db))  # type: ignore[arg-type]
    ids = contacts or list(range(len(turns)))
    try:
        batch = [
            inbox._Pending(SimpleNamespace(id=ids[n]), n, turn) for n, turn in enumerate(turns)
        ]
        return committer._commit(batch)
    finally:
        committer.close()


@pytest.fixture(autouse=True)
def no_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox, "HOLD_GATE_FOR", 0.0)


def test_without_a_waiting_webhook_the_batch_is_one_transaction() -> None:
    db = Recorder(waiting=False)
    outcomes = commit_all(db, ["turn"] * 5)
    assert db.committed == [[0, 1, 2, 3, 4]]
    assert outcomes == [[0], [1], [2], [3], [4]]


def test_a_waiting_webhook_gets_the_gate_between_turns_and_every_turn_its_outcome() -> None:
    db = Recorder(waiting=True)
    outcomes = commit_all(db, ["turn", "conflict", "turn"])
    assert db.committed == [[0], [], [2]]  # the conflicting turn wrote nothing, alone
    assert outcomes[0] == [0] and outcomes[2] == [2]
    assert isinstance(outcomes[1], _Conflict)


def test_a_failed_transaction_fails_its_turns_and_the_rest_not_those_committed() -> None:
    db = Recorder(waiting=True, fail_in=1)
    outcomes = commit_all(db, ["turn", "turn", "turn"])
    assert db.committed == [[0]]
    assert outcomes[0] == [0]
    assert all(isinstance(o, OSError) for o in outcomes[1:])


def test_turns_are_written_in_contact_order_and_answered_in_theirs() -> None:
    """Two workers' batches lock the contacts they share in the same order (no deadlock);
    each caller still gets its own turn's outcome; a contact's turns keep their order."""
    db = Recorder(waiting=False)
    outcomes = commit_all(db, ["turn"] * 4, contacts=[30, 10, 20, 10])
    assert db.committed == [[1, 3, 2, 0]]
    assert outcomes == [[0], [1], [2], [3]]


def test_a_transaction_rolled_back_for_a_deadlock_is_written_again() -> None:
    db = Recorder(waiting=False, deadlocks=2)
    outcomes = commit_all(db, ["turn"] * 3)
    assert len(db.transactions) == 3 and db.committed == [[0, 1, 2]]
    assert outcomes == [[0], [1], [2]]


def test_a_deadlock_that_keeps_coming_back_fails_the_turns() -> None:
    db = Recorder(waiting=False, deadlocks=inbox.DEADLOCK_RETRIES + 1)
    outcomes = commit_all(db, ["turn"] * 2)
    assert db.committed == []
    assert all(isinstance(o, Deadlock) for o in outcomes)


def test_a_batch_stops_waiting_for_company_once_every_working_thread_waits_for_it() -> None:
    """With two handler threads at work the first turn waits for the second; the second ends
    the wait (no third is coming), long before the linger would."""
    db = Recorder(waiting=False)
    committer = GroupCommitter(Processor(db))  # type: ignore[arg-type]
    committer.wait_for_company(60.0, lambda: False, lambda: 2)
    outcomes: list[Any] = []

    def turn(n: int) -> None:
        outcomes.append(committer.commit(SimpleNamespace(id=n), n, "ok"))

    first = threading.Thread(target=turn, args=(1,), daemon=True)
    first.start()
    first.join(0.3)
    assert first.is_alive()  # waiting for the other working thread's turn
    second = threading.Thread(target=turn, args=(2,), daemon=True)
    second.start()
    first.join(10)
    second.join(10)
    assert sorted(outcomes) == [[1], [2]]
    assert db.committed == [[1, 2]]  # together, in one transaction
    committer.close()
