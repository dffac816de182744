"""The job queue: Huey on SQLite (embedded default), on Redis (REDIS_URL), or immediate (tests).

The queue only says "look at this contact / this message": the rows in the database are the
truth, so a task lost with a crashed worker is found again by the sweeper (bot/runtime.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey
from huey.constants import EmptyData
from huey.storage import SqliteStorage

from bot.db.gate import WriteGate
from bot.settings import Settings

_NO_KV = (
    "the embedded queue keeps no results, revocations or task locks (storing {!r}); "
    "see SqliteQueueStorage"
)


class SqliteQueueStorage(SqliteStorage):
    """Huey's SQLite storage with WAL and synchronous=NORMAL, and no key-value store.

    Huey's default (synchronous=FULL) fsyncs on every enqueue and dequeue: measured here as
    a third of the machine in I/O wait at 300 messages/s. NORMAL never corrupts the file; a
    power cut can lose the last tasks, which the sweeper re-creates from the database rows.

    The key-value table holds results, revocations and task locks, and this service uses
    none of them (results=False; the rows in the database say what is done). Huey still
    reads it before each task (is it revoked?) and clears it after (a write transaction
    through the gate): two of the four statements per task, 0.15 -> 0.08 ms of CPU per
    dequeued task alone, and a worker's 16 threads queued for the gate a second time per
    task. So nothing is read or written there; storing something raises.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._gate = WriteGate(Path(str(kwargs.get("filename", "huey.db")) + ".write-lock"))
        super().__init__(*args, **kwargs)

    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        conn.execute("pragma synchronous=1")
        return conn

    def put_data(self, key: str, value: Any, is_result: bool = False) -> None:
        raise NotImplementedError(_NO_KV.format(key))

    def put_if_empty(self, key: str, value: Any, ttl: float | None = None) -> bool:
        raise NotImplementedError(_NO_KV.format(key))

    def peek_data(self, key: str) -> Any:
        return EmptyData

    def peek_many(self, keys: list[str]) -> dict[str, Any]:
        return {}

    def pop_data(self, key: str) -> Any:
        return EmptyData

    def has_data_for_key(self, key: str) -> bool:
        return False

    @contextlib.contextmanager
    def db(self, commit: bool = False, close: bool = False) -> Iterator[sqlite3.Cursor]:
        # Writers queue on the machine-wide gate rather than on SQLite's busy handler.
        with (
            self._gate if commit else contextlib.nullcontext(),
            super().db(commit, close) as cursor,
        ):
            yield cursor


def make_huey(settings: Settings, immediate: bool = False) -> Huey:
    """The Huey instance for these settings."""
    if immediate:
        return MemoryHuey(settings.queue_name, immediate=True, results=False, utc=True)
    if settings.redis_url:
        return RedisHuey(settings.queue_name, url=settings.redis_url, results=False, utc=True)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return Huey(
        settings.queue_name,
        storage_class=SqliteQueueStorage,
        filename=str(settings.queue_path),
        results=False,
        utc=True,
    )
