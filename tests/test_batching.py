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


def test_a_batch_takes_at_most_max_batch_items_and_the_next_the_rest() -> None:
    batches: list[list[int]] = []
    thread = BatchThread(batches.append, max_batch=2, name="test", linger=FOREVER)
    for item in (1, 2, 3):
        thread.put(item)
    thread.close()  # ends the wait: the first batch is full, the next takes the rest
    assert batches == [[1, 2], [3]]


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


def test_hurry_now_ends_the_wait_and_a_waiting_caller_gets_its_outcome() -> None:
    calls = BatchCalls(lambda items: [item * 10 for item in items], max_batch=10, name="test")
    calls.wait_for_company(FOREVER, lambda: False)
    outcome: list[int] = []
    caller = threading.Thread(target=lambda: outcome.append(calls.call(4)), daemon=True)
    caller.start()
    caller.join(0.2)
    assert caller.is_alive()  # waiting for company
    calls.hurry_now()
    caller.join(10)
    assert outcome == [40]
    calls.close()


class _Batches:
    """A `handle` that records each batch and counts them (`handled.acquire` waits for one)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.handled = threading.Semaphore(0)

    def handle(self, batch: list[int]) -> None:
        self.batches.append(batch)
        self.handled.release()


def test_a_batch_does_not_wait_when_hurry_says_so_as_it_would_begin() -> None:
    seen = _Batches()
    hurry = threading.Event()
    thread = BatchThread(seen.handle, max_batch=10, name="test", linger=FOREVER, hurry=hurry.is_set)
    hurry.set()
    thread.put(1)  # in a hurry from the start: alone
    assert seen.handled.acquire(timeout=10)
    hurry.clear()
    thread.put(2)  # waits for company...
    thread.put(3)
    assert not seen.handled.acquire(timeout=0.2)
    thread.hurry_now()  # ...until told
    assert seen.handled.acquire(timeout=10)
    thread.close()
    assert seen.batches == [[1], [2, 3]]


def test_a_lingering_batch_takes_what_came_when_its_time_is_up() -> None:
    seen = _Batches()
    thread = BatchThread(seen.handle, max_batch=10, name="test", linger=0.3)
    thread.put(1)
    thread.put(2)
    assert seen.handled.acquire(timeout=10)
    thread.close()
    assert seen.batches == [[1, 2]]


def test_a_hurry_with_no_batch_waiting_is_forgotten() -> None:
    seen = _Batches()
    thread = BatchThread(seen.handle, max_batch=10, name="test", linger=FOREVER)
    thread.hurry_now()
    thread.put(1)
    assert not seen.handled.acquire(timeout=0.2)  # the earlier hurry does not end this wait
    thread.hurry_now()
    assert seen.handled.acquire(timeout=10)
    thread.close()
    assert seen.batches == [[1]]
