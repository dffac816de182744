"""A background thread that handles queued items in batches (group commit)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchThread(Generic[T]):
    """Takes items from a queue and hands whatever has accumulated to `handle` at once.

    Under load batches grow by themselves (everything queued while the last batch was being
    handled); when idle each item is handled alone, without waiting for company.
    """

    def __init__(self, handle: Callable[[list[T]], None], max_batch: int, name: str) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Queues one item."""
        self._queue.put(item)

    def close(self, timeout: float = 30.0) -> None:
        """Handles what is queued, then stops."""
        self._queue.put(None)
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
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
