"""Batches that wait for company (bot/batching.py): the worker's turn committer writes turns
that come one by one in fewer transactions, and stops waiting when work would be held up."""

from __future__ import annotations

import threading

from bot.batching import BatchCalls, BatchThread

# Long enough that a test never sees a linger run out: each ends its batch another way.
FOREVER = 60.0


def test_without_linger_an_item_alone_is_handled_alone() -> None:
    batches: list[list[int]] = []
    handled = threading.Event()
    gate = threading.Event()

    def handle(batch: list[int]) -> None:
        batches.append(batch)
        handled.set()
        gate.wait(10)

    thread = BatchThread(handle, max_batch=10, name="test")
    thread.put(1)
    assert handled.wait(10)
    thread.put(2)  # queued while the first batch is being handled
    thread.put(3)
    gate.set()
    thread.close()
    assert batches == [[1], [2, 3]]


def test_a_lingering_batch_takes_the_items_that_come_after_its_first() -> None:
    batches: list[list[int]] = []
    full = threading.Event()

    def handle(batch: list[int]) -> None:
        batches.append(batch)
        full.set()

    thread = BatchThread(handle, max_batch=3, name="test", linger=FOREVER)
    for item in (1, 2, 3):
        thread.put(item)
    assert full.wait(10)  # max_batch ends the wait
    thread.close()
    assert batches == [[1, 2, 3]]


def test_closing_handles_a_lingering_batch_at_once() -> None:
    batches: list[list[int]] = []
    thread = BatchThread(batches.append, max_batch=10, name="test", linger=FOREVER)
    thread.put(1)
    thread.put(2)
    done = threading.Thread(target=thread.close)
    done.start()
    done.join(10)
    assert not done.is_alive()
    assert batches == [[1, 2]]


def test_hurry_ends_the_wait_and_a_waiting_caller_gets_its_outcome() -> None:
    hurry = threading.Event()
    calls = BatchCalls(lambda items: [item * 10 for item in items], max_batch=10, name="test")
    calls.wait_for_company(FOREVER, hurry.is_set)
    outcome: list[int] = []
    caller = threading.Thread(target=lambda: outcome.append(calls.call(4)), daemon=True)
    caller.start()
    caller.join(0.2)
    assert caller.is_alive()  # waiting for company
    hurry.set()
    caller.join(10)
    assert outcome == [40]
    calls.close()
