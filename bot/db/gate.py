"""A write gate for SQLite shared by every process on the machine.

SQLite lets one writer in at a time. A writer that finds the lock taken does not queue: it
sleeps and retries in growing steps (1, 2, 5 … 100 ms), so under steady load an unlucky
webhook can wait hundreds of milliseconds while others slip in between its naps. Taking an
exclusive `flock` on a side file first makes writers queue in the kernel and wake as soon as
the lock is free, so SQLite's own lock is never contended. Threads of one process queue on a
`threading.Lock` first (a `flock` is held per open file, not per thread).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType


class WriteGate:
    """Exclusive across threads and processes; re-entrant use is not supported."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> WriteGate:
        self._thread_lock.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Closes the lock file (the gate must not be in use)."""
        os.close(self._fd)


def gate_for_sqlite(url: str) -> WriteGate | None:
    """The gate for an SQLite file URL; None for in-memory databases and other engines."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        return None
    return WriteGate(Path(path + ".write-lock"))
