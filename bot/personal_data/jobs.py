"""Purging an erased person's tasks from the job queue (Huey on SQLite, Redis or memory).

The service's tasks carry ids only, never a number or a text (bot/runtime.py:
`process_contact(contact_id)`, `send_retry(message_id)`, `broadcast_plan(run_id)`,
`broadcast_send(run_id, token)`), and the queue keeps no results (`results=False`). Tasks
still waiting for the erased contact or their messages are removed all the same: they would
only find missing rows, and a queue should not keep pointers to someone who is gone.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Collection
from typing import Any

from huey import Huey
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

log = logging.getLogger(__name__)


def _matcher(
    huey: Huey, contact_ids: Collection[int], message_ids: Collection[int]
) -> Callable[[bytes], bool]:
    def matches(data: bytes) -> bool:
        try:
            message = huey.serializer.deserialize(bytes(data))
        except Exception:
            return False
        name = str(getattr(message, "name", ""))
        args = tuple(getattr(message, "args", None) or ())
        if not args:
            return False
        if name.endswith("process_contact"):
            return args[0] in contact_ids
        if name.endswith("send_retry"):
            return args[0] in message_ids
        return False

    return matches


def purge_tasks(huey: Huey, contact_ids: Collection[int], message_ids: Collection[int]) -> int:
    """Removes waiting and scheduled tasks about these contacts and messages; returns how many.

    A worker may take a task between the read and the removal: that task runs on rows that
    no longer exist and does nothing.
    """
    matches = _matcher(huey, set(contact_ids), set(message_ids))
    storage: Any = huey.storage
    waiting = [d for d in storage.enqueued_items() if matches(d)]
    scheduled = [d for d in storage.scheduled_items() if matches(d)]
    if not waiting and not scheduled:
        return 0
    if isinstance(storage, SqliteStorage):
        for data in waiting:
            storage.sql(
                "delete from task where queue = ? and data = ?", (storage.name, data), commit=True
            )
        for data in scheduled:
            storage.sql(
                "delete from schedule where queue = ? and data = ?",
                (storage.name, data),
                commit=True,
            )
    elif isinstance(storage, RedisStorage):
        for data in waiting:
            storage.conn.lrem(storage.queue_key, 0, data)
        for data in scheduled:
            storage.conn.zrem(storage.schedule_key, data)
    elif isinstance(storage, MemoryStorage):
        with storage._lock:
            storage._queue = [item for item in storage._queue if not matches(item[2])]
            heapq.heapify(storage._queue)
            storage._schedule = [item for item in storage._schedule if not matches(item[1])]
            heapq.heapify(storage._schedule)
    else:  # pragma: no cover - a storage this service never configures
        log.warning("cannot purge tasks from %s", type(storage).__name__)
        return 0
    return len(waiting) + len(scheduled)
