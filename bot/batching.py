"""A background thread that handles queued items in batches (group commit), and the same
for callers that wait for their own item's outcome (`BatchCalls`)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchThread(Generic[T]):
    """Takes items from a queue and hands whatever has accumulated to `handle` at once.

    Under load batches grow by themselves (everything queued while the last batch was being
    handled); when idle each item is handled alone, without waiting for company, unless
    `linger` says otherwise: then a batch waits `linger` seconds after its first item and
    takes what came meanwhile, unless `hurry()` is true as the wait would begin, or until
    `hurry_now()` is called. The wait is one sleep: items that come during it do not wake
    the thread (on a virtual machine each wake-up of a thread costs tens of microseconds of
    CPU; waking per item, or polling every 5 ms, was a fifth of the turn committer's CPU).
    """

    def __init__(
        self,
        handle: Callable[[list[T]], None],
        max_batch: int,
        name: str,
        linger: float = 0.0,
        hurry: Callable[[], bool] | None = None,
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self.linger = linger
        self.hurry = hurry
        self._hurried = threading.Event()
        self._closing = False
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Queues one item."""
        self._queue.put(item)

    def hurry_now(self) -> None:
        """The batch waiting for company, if one is, stops waiting (from any thread)."""
        self._hurried.set()

    def close(self, timeout: float = 30.0) -> None:
        """Handles what is queued, then stops."""
        self._queue.put(None)
        self._closing = True
        self._hurried.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            if self.linger > 0:
                # A hurry from before this batch does not end its wait; one from now on
                # does (asked after the clear: a reason to hurry is not missed in between).
                self._hurried.clear()
                if not (self._closing or (self.hurry is not None and self.hurry())):
                    self._hurried.wait(self.linger)
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                self._handle(batch)
            except Exception:
                log.exception("%s could not handle a batch of %s", self._thread.name, len(batch))


R = TypeVar("R")


class BatchCalls(Generic[T, R]):
    """A `BatchThread` whose callers wait for their own item's outcome.

    `handle(items)` runs in the background thread on everything queued and returns one
    outcome per item, in order: a value, returned to that item's caller, or an exception,
    raised in it (so one item can fail while the rest of its batch succeeds). An exception
    out of `handle` itself is raised in every caller of the batch.
    """

    def __init__(
        self, handle: Callable[[list[T]], list[R | BaseException]], max_batch: int, name: str
    ) -> None:
        self._handle = handle
        self._thread: BatchThread[tuple[T, Future[R]]] = BatchThread(self._run, max_batch, name)

    def call(self, item: T) -> R:
        """Blocks until `item` is handled; returns its outcome or raises it."""
        future: Future[R] = Future()
        self._thread.put((item, future))
        return future.result()

    def close(self) -> None:
        """Handles what is queued, then stops."""
        self._thread.close()

    def wait_for_company(self, linger: float, hurry: Callable[[], bool] | None = None) -> None:
        """From the next batch on, waits as `BatchThread` says (`linger`, `hurry`)."""
        self._thread.hurry = hurry
        self._thread.linger = linger

    def hurry_now(self) -> None:
        """The batch waiting for company, if one is, stops waiting."""
        self._thread.hurry_now()

    def _run(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            outcomes = self._handle([item for item, _ in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
