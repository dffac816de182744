"""The web's inbound spool (the embedded default; on PostgreSQL with INBOUND_SPOOL): a webhook
is acknowledged once its message is in the spool file, and the mover, a thread of one web
process, stores it in the database right after, in the order the messages were written.

Why (issue 15). On SQLite one writer runs at a time, and the workers write too. Measured at
300 msg/s on `make run` with the workers far behind (a 2-core machine, calibration 134–207):
a webhook that waited for its own insert waited for the write gate behind a worker's group
commit (p99 30–41 ms; a worker holding the gate is niced and shares its interpreter lock
with 16 handler threads, so its commits last 20–41 ms at p99) and for its own process's
batch (p99 11–19 ms): acknowledgements p50 23–356 ms, p99 71–541 ms over five runs. With the
acknowledgement given once the message is handed on (the same runs otherwise): p50 4.5–4.9 ms,
p99 27.5–27.8 ms. The spool makes that safe: the message is on disk before the 200.

Durability. A record is written with one `write` before the webhook is answered: it survives
the process dying as the database's own commits do (SQLite in WAL mode with
`synchronous=NORMAL`, this service's setting: neither is flushed to the disk at each commit,
and both survive a crash of the process, not the machine losing power first). With `sync`
(the web on PostgreSQL, whose commits are flushed) each record is also flushed to the disk
(`fdatasync`) before the webhook is answered, and so are the lines compaction moves, so an
acknowledged message survives what a PostgreSQL commit survives. A write that fails (a full
disk) is undone and the webhook answered 503, as when the database refuses it.

PostgreSQL (`INBOUND_SPOOL=true`, which `bot run` sets for the processes it starts on one
machine): measured with `make run-prod` on a 2-core machine shared with PostgreSQL, Redis
and the workers, the webhook's own transaction waited for CPU behind the workers' database
sessions (ack p99 195 ms at 100 msg/s, p50 5.8 s at 300); with the spool 41 ms and 0.7 s, and
the web stores batches rather than one transaction per webhook. The spool is a file of the
web's machine, so a `bot web` spread over several machines or containers keeps it only where
that machine's disk outlives the process (README: Deploying).

Order. Every web process appends to one file, `var/spool/inbox.jsonl` (mode 0600, one JSON
line per message), under an exclusive `flock` on it, so the file's order is the order the
webhooks were acknowledged in. One process at a time moves it (whoever holds the `flock` on
`mover.lock`; when its process dies another takes over within `ELECT_EVERY`): a contact's
second message, acknowledged after the first on another web process, is stored after it.

Once its lines are stored the mover overwrites them with zeros and cuts them off (copies of
messages do not linger beside the database). A new mover starts from the top of the file:
lines its predecessor stored but had not cut off yet are stored again and found to be there
(every spooled message has its provider's id, which the inbox deduplicates). A line a crash
cut short (its webhook was never answered) is dropped and logged. While the database is out
the mover waits and tries again, in order; a message it refuses for good is appended to
`rejected.jsonl` beside the spool and logged as an error, not dropped.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.core.messages import Channel, Inbound
from bot.inbox import Accepted

log = logging.getLogger(__name__)

SPOOL = "inbox.jsonl"
MOVER_LOCK = "mover.lock"
# The mover looks at the file this often, and stores what came meanwhile in one transaction.
# Waking it for each message instead cost a transaction per message: measured (issue 15,
# `bot web` alone, 100 webhooks/s), 5.4 ms of the web's CPU per message with a wake per put
# and a 5 ms poll, 4.0 ms with this. A message waits 20 ms longer on average before the
# worker sees it; its acknowledgement does not wait for the mover at all.
POLL = 0.04
# A process that does not move tries to take over this often.
ELECT_EVERY = 0.5
# Stored lines are cut off the file once nothing new came for IDLE seconds, or under load
# once they make this many bytes (each cut holds up the writers for a moment).
COMPACT_BYTES = 64 * 1024
# Seconds without a new line after which the stored ones are cut off.
IDLE = 0.2
# An unfinished last line this old, nobody writing: its writer died mid-line.
STALE_LINE = 1.0
# The database could not take anything (an outage, its lock held for 30 s): try again later.
OUTAGE = (OperationalError, InterfaceError, PoolTimeout)
REJECTED = "rejected.jsonl"
# Backoff while the database is out, seconds.
RETRY_FIRST = 0.1
RETRY_MAX = 5.0


def spool_folder(var_dir: Path) -> Path:
    """Where the web keeps its spool (under VAR_DIR)."""
    return var_dir / "spool"


Store = Callable[[list[tuple[Inbound, bool, datetime]]], list[Accepted | BaseException]]


def encode(inbound: Inbound, now: datetime) -> bytes:
    """One spool line (ASCII JSON: a body's lone surrogates cannot break it)."""
    record = {
        "channel": inbound.channel.value,
        "sender": inbound.sender,
        "body": inbound.body,
        "media": list(inbound.media_urls),
        "id": inbound.provider_id,
        "name": inbound.profile_name,
        "received": inbound.received_at.isoformat() if inbound.received_at else None,
        "route": inbound.route,
        "now": now.isoformat(),
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> tuple[Inbound, datetime]:
    """A spool line back; raises ValueError (or KeyError, TypeError) on a damaged one."""
    record: dict[str, Any] = json.loads(line)
    inbound = Inbound(
        channel=Channel(record["channel"]),
        sender=str(record["sender"]),
        body=str(record["body"]),
        media_urls=tuple(str(url) for url in record["media"]),
        provider_id=str(record["id"]),
        profile_name=record["name"],
        received_at=datetime.fromisoformat(record["received"]) if record["received"] else None,
        route=record["route"],
    )
    return inbound, datetime.fromisoformat(record["now"])


@dataclass(frozen=True)
class _Record:
    inbound: Inbound
    now: datetime


class InboundSpool:
    """Spools webhooks' messages (`put`) and moves them into the database in batches.

    Every web process of the machine appends to one file; one of them, whichever holds the
    mover's lock, moves its lines into the database in the order they were written.

    `store` writes a batch and returns one outcome per message (bot.inbox.store_batch);
    `stored` is called in the moving process for each message once it is in the database.
    """

    def __init__(
        self,
        directory: Path,
        store: Store,
        stored: Callable[[Inbound, Accepted], None],
        max_batch: int = 64,
        compact_bytes: int = COMPACT_BYTES,
        poll: float = POLL,
        elect_every: float = ELECT_EVERY,
        sync: bool = False,
        moved: Callable[[], None] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.path = directory / SPOOL
        self._store = store
        self._stored = stored
        self._max_batch = max_batch
        self._compact_bytes = compact_bytes
        self._poll = poll
        self._elect_every = elect_every
        self._sync = sync  # flush each record to the disk before the webhook is answered
        self._moved = moved  # called after each batch is in the database (bot/doorbell.py)
        # Appends (O_APPEND, under an exclusive flock on the file: whole lines, in one order
        # for every process); the mover reads and rewrites through a second descriptor.
        self._append_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fd = os.open(self.path, os.O_RDWR)
        self._mover_fd = os.open(directory / MOVER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        self._lock = threading.Lock()  # one appending thread of this process at a time
        self._close_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-mover", daemon=True)
        self._thread.start()

    # -- the webhook's side ---------------------------------------------------------------

    def put(self, inbound: Inbound, now: datetime) -> None:
        """Appends the message to the spool file; it is moved into the database shortly
        after. Raises OSError when it could not be written (nothing of it is left), or not
        flushed with `sync` (the line stays: a repeated delivery is found to be stored)."""
        if not inbound.provider_id:
            raise ValueError("only messages with a provider id are spooled (deduplication)")
        line = encode(inbound, now)
        with self._lock:
            if self._append_fd < 0:
                raise OSError(errno.EBADF, "the spool is closed")  # shutting down: a 503
            fcntl.flock(self._append_fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._append_fd).st_size
                if size and os.pread(self._fd, 1, size - 1) != b"\n":
                    size = self._cut_short_line(size)  # a writer died mid-line
                try:
                    written = os.write(self._append_fd, line)
                    if written != len(line):
                        raise OSError(f"spool: wrote {written} of {len(line)} bytes")
                except OSError:
                    os.ftruncate(self._fd, size)  # no half record before the next
                    raise
            finally:
                fcntl.flock(self._append_fd, fcntl.LOCK_UN)
        if self._sync:  # outside the lock: appends meanwhile share the flush
            os.fdatasync(self._append_fd)

    def close(self, timeout: float = 30.0) -> None:
        """Moves what is spooled (while the database takes it), then stops moving; what is
        left stays in the file for the next mover."""
        self._close_requested.set()
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():  # stuck in the database: its files stay open for it
            log.warning("the inbox mover did not stop within %.0f s", timeout)
            return
        # Once: a second close (an exit handler after an explicit close) must not close
        # descriptor numbers the process has since given to other files, nor may a late
        # put write to them (it gets EBADF: a 503, nothing written).
        with self._lock:
            fds = (self._mover_fd, self._append_fd, self._fd)
            self._mover_fd = self._append_fd = self._fd = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    # -- the mover ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._close_requested.is_set():
            try:
                fcntl.flock(self._mover_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process moves; take over if it dies
                self._close_requested.wait(self._elect_every)
                continue
            try:
                self._move_all()
                return  # closing
            except Exception:
                log.exception("the inbox mover failed; it starts again in 1 s")
            finally:
                fcntl.flock(self._mover_fd, fcntl.LOCK_UN)
            self._close_requested.wait(1.0)

    def _move_all(self) -> None:
        """As the mover: reads the file from the start (what a dead mover left is stored
        again and found to be stored), stores each line in order, and keeps the file short."""
        offset = 0  # what is before it is in the database (or set aside)
        stale: tuple[int, float] | None = None  # the file's size with an unfinished line, since
        last_new = time.monotonic()  # when lines last came
        while True:
            closing = self._close_requested.is_set()
            size = os.fstat(self._fd).st_size
            data = os.pread(self._fd, size - offset, offset) if size > offset else b""
            lines_end = data.rfind(b"\n") + 1
            records, damaged = _parse(data[:lines_end])
            for start in range(0, len(records), self._max_batch):
                if not self._move(records[start : start + self._max_batch]):
                    return  # closing during an outage: the lines stay for the next mover
                if self._moved is not None:
                    try:
                        self._moved()
                    except Exception:
                        log.exception("after moving a batch of the spool")
            if damaged:
                log.warning("%s damaged lines in the spool left out", damaged)
            if lines_end:
                last_new = time.monotonic()
            offset += lines_end  # whole lines: stored, set aside or damaged
            if closing:
                return
            if size == offset:
                stale = None
            elif stale is None or stale[0] != size:
                stale = (size, time.monotonic())
            # Compacting takes the writers' lock (and costs a few system calls): once the
            # lines stop coming for a moment, or under load every `compact_bytes`.
            idle = size == offset and time.monotonic() - last_new > IDLE
            if offset and (idle or offset >= self._compact_bytes):
                offset = self._compact(offset)
            elif stale is not None and time.monotonic() - stale[1] > STALE_LINE:
                offset = self._compact(offset)  # the writer of that line died mid-write
                stale = None
            self._close_requested.wait(self._poll)

    def _move(self, batch: list[_Record]) -> bool:
        """Stores `batch`, retrying while the database is out; False when the spool is
        closing during an outage (the records stay in the file)."""
        delay = RETRY_FIRST
        while batch:
            try:
                outcomes = self._store([(r.inbound, False, r.now) for r in batch])
            except Exception as exc:  # not one outcome per message: all of them share it
                outcomes = [exc] * len(batch)
            retry: list[_Record] = []
            for record, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, OUTAGE):
                    retry.append(record)
                elif isinstance(outcome, BaseException):
                    self._reject(record, outcome)
                else:
                    try:
                        self._stored(record.inbound, outcome)
                    except Exception:
                        log.exception("after storing a spooled message")
            batch = retry
            if batch:
                reason = next(o for o in outcomes if isinstance(o, OUTAGE))
                if self._close_requested.is_set():
                    log.warning(
                        "the database does not take spooled messages; %s stay in the spool",
                        len(batch),
                    )
                    return False
                log.warning(
                    "the database does not take spooled messages (%s); again in %.1f s",
                    type(reason).__name__,
                    delay,
                )
                self._close_requested.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
        return True

    def _reject(self, record: _Record, exc: BaseException) -> None:
        """Sets a message the database refused aside in REJECTED (or, if even that fails,
        in the log: one message must not stop every one behind it)."""
        path = self.directory / REJECTED
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, encode(record.inbound, record.now))
            finally:
                os.close(fd)
        except OSError:
            log.exception(
                "the database refused spooled message %s (%s), and it could not be set aside",
                record.inbound.provider_id,
                type(exc).__name__,
            )
            return
        log.error(
            "the database refused spooled message %s (%s); kept in %s",
            record.inbound.provider_id,
            type(exc).__name__,
            path,
        )

    def _compact(self, offset: int) -> int:
        """Under the writers' lock: the lines not yet stored move to the start of the file,
        what was stored is overwritten with zeros and cut off. Returns the new offset (0)."""
        # This process's writers hold `_lock` (a flock is shared by the threads of the
        # process that took it), the others' the flock.
        with self._lock:
            fcntl.flock(self._append_fd, fcntl.LOCK_EX)
            try:
                return self._compact_locked(offset)
            finally:
                fcntl.flock(self._append_fd, fcntl.LOCK_UN)

    def _compact_locked(self, offset: int) -> int:
        size = os.fstat(self._fd).st_size
        tail = os.pread(self._fd, size - offset, offset) if size > offset else b""
        cut = tail.rfind(b"\n") + 1
        if cut < len(tail):  # nobody writes now: a line left unfinished is a dead one's
            log.warning("a spooled line cut short by a crash left out (never acknowledged)")
            tail = tail[:cut]
        if tail:
            os.pwrite(self._fd, tail, 0)
            if self._sync:  # on the disk at the top before their first copy is zeroed
                os.fdatasync(self._fd)
        if size > len(tail):
            os.pwrite(self._fd, bytes(size - len(tail)), len(tail))
        os.ftruncate(self._fd, len(tail))
        return 0

    def _cut_short_line(self, size: int) -> int:
        """Under the writers' lock: drops an unfinished last line (its writer died before
        answering); returns the new size."""
        data = os.pread(self._fd, size, 0)
        keep = data.rfind(b"\n") + 1
        log.warning("a spooled line cut short by a crash left out (never acknowledged)")
        os.pwrite(self._fd, bytes(size - keep), keep)
        os.ftruncate(self._fd, keep)
        return keep


def _parse(data: bytes) -> tuple[list[_Record], int]:
    """The records of whole lines, and how many lines were damaged."""
    records = []
    damaged = 0
    for line in data.split(b"\n")[:-1]:
        if not line.strip(b"\0"):
            continue
        try:
            inbound, now = decode(line)
        except (ValueError, KeyError, TypeError):
            damaged += 1
            continue
        records.append(_Record(inbound, now))
    return records, damaged
