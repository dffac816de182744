"""Where paces and limits are counted: Redis when REDIS_URL is set, else a small SQLite file
shared by every process of the machine.

Two paces must hold across processes: a sender number's broadcast pace
(bot/broadcasts/pacing.py) and an Android phone's pace (bot/channels/android/pool.py), a
SIM sending faster than a person could type being flagged for bulk sending. `bot run`
starts two workers on the embedded default, and each sends through the same numbers and
phones: counted in each process's memory, as the `limits` library's "memory://" storage
does, they would together send at twice the pace. So without Redis the moving windows live
in `VAR_DIR/pace.db`, a file of their own (not the service's database: no write there waits
for a pace, nor a pace for the service's writes), one row per unit spent. The dashboard's
sign-in limits likewise (`VAR_DIR/login-limits.db`): `bot run` starts two web processes, and
an attacker whose attempts were counted per process would get twice the tries.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from limits.storage import MovingWindowSupport, Storage, storage_from_string

PACE_FILE = "pace.db"
LOGIN_LIMITS_FILE = "login-limits.db"
SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS spent (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS spent_key_at ON spent (key, at);
CREATE INDEX IF NOT EXISTS spent_expires ON spent (expires);
CREATE TABLE IF NOT EXISTS counters
    (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL);
COMMIT;
"""


def pace_storage(redis_url: str | None, var_dir: Path | None) -> Storage:
    """Redis's storage when `redis_url` is set; else the machine's shared file in `var_dir`;
    else (neither: tests, one process) this process's memory."""
    if var_dir is not None and not redis_url:
        return SharedFileStorage(var_dir / PACE_FILE)
    storage = storage_from_string(redis_url or "memory://")
    assert isinstance(storage, Storage)  # not an asyncio storage: neither scheme is one
    return storage


class SharedFileStorage(Storage, MovingWindowSupport):
    """The `limits` moving window in an SQLite file: what one process spends, the others see.

    Each acquisition is one short write transaction (BEGIN IMMEDIATE: two processes never
    both see room for the last unit). Only the moving window is kept here, the one strategy
    the service uses; the fixed-window counters work too, for completeness.
    """

    STORAGE_SCHEME = ["bot-pace-file"]  # noqa: RUF012 - as `limits` declares it

    def __init__(self, path: Path | str, wrap_exceptions: bool = False, **options: object) -> None:
        super().__init__(str(path), wrap_exceptions=wrap_exceptions)
        # Also reachable as storage_from_string("bot-pace-file:///path/pace.db").
        self.path = Path(str(path).removeprefix("bot-pace-file://"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA synchronous=OFF")  # a pace lost in a crash is harmless
        # Processes starting together race to create the file: switching it to WAL is not
        # covered by the busy timeout, so whoever loses tries again.
        deadline = time.monotonic() + 10.0
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.executescript(SCHEMA)
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, this process's threads one at a time."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _write(self, statements: list[tuple[str, tuple[object, ...]]]) -> list[list[tuple]]:  # type: ignore[type-arg]
        with self._transaction() as conn:
            return [conn.execute(sql, args).fetchall() for sql, args in statements]

    # -- the moving window --------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._transaction() as conn:
            now = time.time()
            # Every key's spent units go when their window has passed: keys may name people
            # (the dashboard's sign-in limits), kept no longer than that.
            conn.execute("DELETE FROM spent WHERE expires < ?", (now,))
            (count,) = conn.execute(
                "SELECT count(*) FROM spent WHERE key = ? AND at >= ?", (key, now - expiry)
            ).fetchone()
            room = bool(count + amount <= limit)
            if room:
                conn.executemany(
                    "INSERT INTO spent (key, at, expires) VALUES (?, ?, ?)",
                    [(key, now, now + expiry)] * amount,
                )
        return room

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        with self._lock:
            start, count = self._conn.execute(
                "SELECT min(at), count(*) FROM spent WHERE key = ? AND at >= ?",
                (key, now - expiry),
            ).fetchone()
        return (start, count) if count else (now, 0)

    # -- fixed-window counters ----------------------------------------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        (row,) = self._write(
            [
                ("DELETE FROM counters WHERE key = ? AND expires <= ?", (key, now)),
                (
                    "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value"
                    " RETURNING value",
                    (key, amount, now + expiry),
                ),
            ]
        )[1]
        return int(row[0])

    def get(self, key: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM counters WHERE key = ? AND expires > ?", (key, time.time())
            ).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        with self._lock:
            row = self._conn.execute(
                "SELECT expires FROM counters WHERE key = ?", (key,)
            ).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        try:
            with self._lock:
                self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        (spent, counters) = self._write(
            [("DELETE FROM spent RETURNING 1", ()), ("DELETE FROM counters RETURNING 1", ())]
        )
        return len(spent) + len(counters)

    def clear(self, key: str) -> None:
        self._write(
            [
                ("DELETE FROM spent WHERE key = ?", (key,)),
                ("DELETE FROM counters WHERE key = ?", (key,)),
            ]
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
