"""A write gate for SQLite shared by every process on the machine, webhooks first.

SQLite lets one writer in at a time. A writer that finds the lock taken does not queue: it
sleeps and retries in growing steps (1, 2, 5 … 100 ms), so under steady load an unlucky
webhook can wait hundreds of milliseconds while others slip in between its naps. Taking an
exclusive `flock` on a side file first makes writers queue in the kernel and wake as soon as
the lock is free, so SQLite's own lock is never contended. Threads of one process queue on a
`threading.Lock` first (a `flock` is held per open file, not per thread).

Webhooks first (issue 15). Measured at 300 msg/s on `make run`, the worker far behind: the
worker's writes held the gate about 70 % of the time (group commits of turns 4.5 ms each,
the sent-recorder's batches), and the web's webhook threads spent most of their time queued
behind them; acknowledgements took seconds. So the gate has two kinds of users. The web
(`first=True`) says it is waiting: while any of its threads waits for or holds the gate, its
process holds a shared `flock` on a second side file (`….first`). Everyone else (workers, the
scheduler, the CLI) yields: before taking the gate it checks that file, and while a webhook
waits it steps aside, up to `YIELD_FOR` at a time, then takes its turn anyway (the backlog
must drain). A webhook therefore waits for at most the write already under way, not for the
queue of writes behind it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType

# How long a yielding writer steps aside for webhooks before it takes its turn anyway, and
# how often it looks again meanwhile.
YIELD_FOR = 0.05
YIELD_STEP = 0.001


class WriteGate:
    """Exclusive across threads and processes; re-entrant use is not supported.

    `first`: this process's writers go before yielding ones (the web's webhooks).
    """

    def __init__(self, path: Path, first: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.first = first
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        # The "a webhook waits" flag: a shared flock held by a first process while any of
        # its threads waits or writes; a yielding process probes it with a non-blocking
        # exclusive one.
        self._flag_fd = os.open(f"{path}.first", os.O_RDWR | os.O_CREAT, 0o600)
        self._flag_lock = threading.Lock()
        self._flag_users = 0
        self.yielded_seconds = 0.0  # time yielding writers of this process stepped aside

    def __enter__(self) -> WriteGate:
        if self.first:
            self._raise_flag()
        else:
            self._step_aside()
        try:
            self._thread_lock.acquire()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise
        except BaseException:
            if self.first:
                self._lower_flag()
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
            if self.first:
                self._lower_flag()

    def webhook_waiting(self) -> bool:
        """True while a first process's thread waits for the gate or holds it."""
        try:
            fcntl.flock(self._flag_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._flag_fd, fcntl.LOCK_UN)
        return False

    def _step_aside(self) -> None:
        started = time.monotonic()
        deadline = started + YIELD_FOR
        while self.webhook_waiting() and time.monotonic() < deadline:
            time.sleep(YIELD_STEP)
        waited = time.monotonic() - started
        if waited > YIELD_STEP:
            self.yielded_seconds += waited

    def _raise_flag(self) -> None:
        with self._flag_lock:
            self._flag_users += 1
            if self._flag_users == 1:
                fcntl.flock(self._flag_fd, fcntl.LOCK_SH)

    def _lower_flag(self) -> None:
        with self._flag_lock:
            self._flag_users -= 1
            if self._flag_users == 0:
                fcntl.flock(self._flag_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Closes the lock files (the gate must not be in use)."""
        os.close(self._fd)
        os.close(self._flag_fd)


def gate_for_sqlite(url: str, first: bool = False) -> WriteGate | None:
    """The gate for an SQLite file URL; None for in-memory databases and other engines."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        return None
    return WriteGate(Path(path + ".write-lock"), first=first)
