"""The embedded default's inbound queue is the messages table itself (SQLite).

A webhook's stored row already says everything a worker needs: a contact has a message
waiting. Telling Huey as well cost, per message, a write transaction in the web (the
enqueue, behind queue.db's write gate) and in the worker a dequeue transaction, Huey's
bookkeeping, and 16 handler threads polling queue.db through one lock and one gate. Here a
worker's feed thread reads the inbound messages received since the last one it saw (an
index range scan on direction, status, id; skipped when SQLite's `data_version` says no
other connection committed), and hands each contact with waiting messages to one of
WORKER_CONCURRENCY handler threads, one thread per contact at a time: a contact who writes
again while being handled is handled again after (the flag below), so every message is
taken up in order.

Nothing is lost with a worker: the rows stay `received` until a turn commits, and a new
feed starts from the oldest waiting message. Every few seconds the feed also looks at the
oldest waiting messages again, whatever it saw before, and offers those whose contact it is
not handling: SQLite gives a new row the id of a deleted newest one (an erasure), below
what the feed has seen, and a contact whose turn failed is tried again.

Several workers on one SQLite file split the contacts between them (`share`); even without
that, contacts' versions let exactly one worker win each message. PostgreSQL and Redis
(`make run-prod`) keep Huey's queue, which spreads the work over machines; Huey carries
sends, retries and broadcasts everywhere.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.db.database import Database
from bot.doorbell import Doorbell

log = logging.getLogger(__name__)

# On the driver's connection, not a prebuilt SQLAlchemy statement (bot/db/statements.py):
# the feed asks this up to 200 times a second, and the feed exists only on SQLite.
_WAITING = (
    "SELECT id, contact_id FROM messages WHERE direction = 'in' AND status = 'received'"
    " AND id > ? ORDER BY id LIMIT ?"
)


class InboxFeed:
    """Finds waiting inbound messages and runs `handle(contact_id)` for their contacts.

    `handle` handles the contact's waiting messages, oldest first, and returns True if it
    stopped with some left (it is queued again, behind the contacts waiting already).
    `share` = (k, n): this feed takes the contacts whose id modulo n is k.
    """

    def __init__(
        self,
        db: Database,
        handle: Callable[[int], bool],
        threads: int,
        share: tuple[int, int] = (0, 1),
        poll: float = 0.005,
        idle_poll: float = 0.05,
        batch: int = 500,
        rescan: float = 5.0,
        doorbell: Doorbell | None = None,
    ) -> None:
        if not db.is_sqlite:
            raise ValueError("the inbound feed reads an SQLite database (Huey's queue otherwise)")
        k, n = share
        if not 0 <= k < n:
            raise ValueError(f"share {k}/{n}: k must be in 0..n-1")
        self._db = db
        self._handle = handle
        self._share = share
        self._threads_wanted = max(1, threads)
        self._poll = poll
        self._idle_poll = idle_poll
        self._batch = batch
        self._rescan = rescan
        # Rung by the web's mover when it has stored messages (bot/doorbell.py): the watcher
        # sleeps on it, and once it has rung, until it rings again (or idle_poll) instead of
        # polling every `poll` while anything commits.
        self._doorbell = doorbell
        self._ready: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._busy: set[int] = set()  # queued or being handled
        self._idle = 0  # handler threads waiting for a contact
        # Called when a contact is queued and no handler thread is free to take it.
        self.on_backlog: Callable[[], None] | None = None
        self._again: set[int] = set()  # offered again while being handled
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.seen = 0  # the highest message id the feed has read

    def start(self) -> None:
        """Starts the handler threads and the thread that watches the table."""
        for n in range(self._threads_wanted):
            thread = threading.Thread(target=self._serve, name=f"inbox-{n + 1}", daemon=True)
            thread.start()
            self._threads.append(thread)
        watcher = threading.Thread(target=self._watch, name="inbox-feed", daemon=True)
        watcher.start()
        self._threads.append(watcher)

    def offer(self, contact_id: int, again: bool = True) -> None:
        """Has the contact's waiting messages handled; if it is being handled now, once more
        after that (unless not `again`)."""
        with self._lock:
            if contact_id in self._busy:
                if again:
                    self._again.add(contact_id)
                return
            self._busy.add(contact_id)
        self._queue(contact_id)

    def working(self) -> int:
        """Handler threads handling a contact now."""
        return self._threads_wanted - self._idle

    def backlogged(self) -> bool:
        """True while contacts wait for a handler thread (every thread is taken)."""
        return self._ready.qsize() > self._idle

    def _queue(self, contact_id: int) -> None:
        self._ready.put(contact_id)
        if self.on_backlog is not None and self.backlogged():
            self.on_backlog()

    @property
    def busy(self) -> int:
        """Contacts queued or being handled."""
        with self._lock:
            return len(self._busy)

    def close(self, timeout: float = 30.0) -> None:
        """Stops watching; the handler threads finish the contact under way and stop."""
        self._stop.set()
        if self._doorbell is not None:
            self._doorbell.ring_self()  # the watcher may be asleep on it
        for _ in range(self._threads_wanted):
            self._ready.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout)
        if self._doorbell is not None:
            self._doorbell.close()

    def poll_once(self, conn: sqlite3.Connection, rescan: bool = False) -> int:
        """Reads the messages received since the last poll and offers their contacts;
        returns how many messages it read. `rescan`: the oldest waiting messages instead,
        whose contacts are offered unless being handled."""
        k, n = self._share
        rows = conn.execute(_WAITING, (0 if rescan else self.seen, self._batch)).fetchall()
        for message_id, contact_id in rows:
            if not rescan:
                self.seen = message_id
            if contact_id % n == k:
                self.offer(contact_id, again=not rescan)
        return len(rows)

    def _watch(self) -> None:
        raw: Any = None
        version = None
        wait = self._poll
        rescan_at = time.monotonic() + self._rescan
        while not self._stop.is_set():
            try:
                if raw is None:
                    raw = self._db.engine.raw_connection()
                conn: sqlite3.Connection = raw.driver_connection
                if time.monotonic() >= rescan_at:
                    rescan_at = time.monotonic() + self._rescan
                    self.poll_once(conn, rescan=True)
                # Changes when any other connection (any process) has committed since.
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now != version:
                    version = now
                    if self.poll_once(conn) == self._batch:
                        continue  # more wait: read on at once
                    wait = self._poll
                else:
                    wait = min(self._idle_poll, wait * 2)
            except Exception:
                log.exception("reading waiting messages failed; trying again")
                if raw is not None:
                    raw.invalidate()
                    raw = None
                version = None
                wait = 1.0
            if self._doorbell is None:
                self._stop.wait(wait)
            elif self._doorbell.wait(max(wait, self._idle_poll) if self._doorbell.rings else wait):
                version = None  # rung: read the table whatever data_version says
        if raw is not None:
            raw.close()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            contact_id = self._ready.get()
            with self._lock:
                self._idle -= 1
            if contact_id is None:
                return
            more = False
            try:
                more = self._handle(contact_id)
            except Exception:
                # Its messages stay waiting: the sweeper offers the contact again later.
                log.exception("handling contact %s failed", contact_id)
            with self._lock:
                if not more and contact_id not in self._again:
                    self._busy.discard(contact_id)
                    continue
                self._again.discard(contact_id)
            self._queue(contact_id)  # behind the contacts already waiting
