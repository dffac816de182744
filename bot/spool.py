"""The web's inbound spool on the embedded default: a webhook is acknowledged once its message
is in the spool file of the web process that took it; a thread of that process moves it
into the database right after.

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
and both survive a crash of the process, not the machine losing power first). A write that
fails (a full disk) is undone and the webhook answered 503, as when the database refuses it.

Files: `var/spool/<pid>-<n>-<random>.jsonl`, mode 0600, one JSON record per line, each held
with an exclusive `flock` by the process writing it (created under a dot-name, locked, then
renamed, so nobody takes a file before its owner holds it). Once every record of a file is in
the database the file is overwritten with zeros and emptied (or deleted, once a newer file
took its place): copies of messages do not linger beside the database. A file nobody holds
belongs to a process that died: any web process moves its records (when its spool starts
and every `RECOVER_EVERY` seconds), then deletes it. A record stored twice that way (stored,
then its process died before emptying the file) is stored once: every spooled message has
its provider's id, which the inbox deduplicates. A record the database refuses for good (not
an outage: that is retried until it ends) is appended to `rejected.jsonl` beside them and
logged as an error, not dropped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import secrets
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

# A file takes new records until it is this large; then a new one is begun.
SEGMENT_BYTES = 1 << 20
# How often a web process looks for the files of processes that died.
RECOVER_EVERY = 5.0
# The database could not take anything (an outage, its lock held for 30 s): try again later.
OUTAGE = (OperationalError, InterfaceError, PoolTimeout)
REJECTED = "rejected.jsonl"
# Backoff while the database is out, seconds.
RETRY_FIRST = 0.1
RETRY_MAX = 5.0

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


@dataclass(eq=False)
class _Segment:
    path: Path
    fd: int
    size: int = 0
    pending: int = 0  # records written here and not yet in the database
    retired: bool = False  # a newer file takes the records now


@dataclass(frozen=True)
class _Record:
    inbound: Inbound
    now: datetime
    segment: _Segment | None  # None: recovered from a dead process's file


_STOP = object()


class InboundSpool:
    """Spools webhooks' messages (`put`) and moves them into the database in batches.

    `store` writes a batch and returns one outcome per message (bot.inbox.store_batch);
    `stored` is called in the moving thread for each message once it is in the database.
    """

    def __init__(
        self,
        directory: Path,
        store: Store,
        stored: Callable[[Inbound, Accepted], None],
        max_batch: int = 64,
        segment_bytes: int = SEGMENT_BYTES,
        recover_every: float = RECOVER_EVERY,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self._store = store
        self._stored = stored
        self._max_batch = max_batch
        self._segment_bytes = segment_bytes
        self._recover_every = recover_every
        self._lock = threading.Lock()
        self._opened = 0
        self._segment = self._open_segment()
        self._queue: queue.SimpleQueue[_Record | object] = queue.SimpleQueue()
        self._close_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-mover", daemon=True)
        self._thread.start()

    # -- the webhook's side ---------------------------------------------------------------

    def put(self, inbound: Inbound, now: datetime) -> None:
        """Writes the message to this process's spool file; it is moved into the database
        shortly after. Raises OSError when it could not be written (nothing of it is left)."""
        if not inbound.provider_id:
            raise ValueError("only messages with a provider id are spooled (deduplication)")
        line = encode(inbound, now)
        with self._lock:
            segment = self._segment
            try:
                written = os.pwrite(segment.fd, line, segment.size)
                if written != len(line):
                    raise OSError(f"spool: wrote {written} of {len(line)} bytes")
            except OSError:
                os.ftruncate(segment.fd, segment.size)  # no half record before the next
                raise
            segment.size += len(line)
            segment.pending += 1
            if segment.size >= self._segment_bytes:
                segment.retired = True
                self._segment = self._open_segment()
            self._queue.put(_Record(inbound, now, segment))

    @property
    def pending(self) -> int:
        """Records in this process's files that are not yet in the database."""
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Moves what is spooled (while the database takes it), then stops. What is left
        stays in the file, for the next web process to move."""
        self._close_requested.set()
        self._queue.put(_STOP)
        self._thread.join(timeout=timeout)

    # -- the mover ------------------------------------------------------------------------

    def _run(self) -> None:
        self._recover()
        next_scan = time.monotonic() + self._recover_every
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=max(0.0, next_scan - time.monotonic()))
            except queue.Empty:
                first = None
            if time.monotonic() >= next_scan:
                self._recover()
                next_scan = time.monotonic() + self._recover_every
            if first is None:
                continue
            if first is _STOP:
                break
            assert isinstance(first, _Record)
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Record)
                batch.append(item)
            if not self._move(batch, stop_on_outage=False) and self._close_requested.is_set():
                break

    def _move(self, batch: list[_Record], stop_on_outage: bool) -> bool:
        """Stores `batch`, retrying while the database is out; False when it gave up
        (`stop_on_outage`, or the spool is closing): the records stay in their files."""
        delay = RETRY_FIRST
        kept = True
        while batch:
            try:
                outcomes = self._store([(r.inbound, False, r.now) for r in batch])
            except Exception as exc:  # not one outcome per message: all of them share it
                outcomes = [exc] * len(batch)
            retry = []
            for record, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, OUTAGE):
                    retry.append(record)
                    continue
                if isinstance(outcome, BaseException):
                    if not self._reject(record, outcome):
                        kept = False  # it stays in its file, for whoever recovers it
                        continue
                else:
                    try:
                        self._stored(record.inbound, outcome)
                    except Exception:
                        log.exception("after storing a spooled message")
                self._done(record)
            batch = retry
            if batch:
                reason = next(o for o in outcomes if isinstance(o, OUTAGE))
                if stop_on_outage or self._close_requested.is_set():
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
        return kept

    def _reject(self, record: _Record, exc: BaseException) -> bool:
        """Sets a message the database refused aside in REJECTED; False when even that
        failed (the message stays where it is)."""
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
            return False
        log.error(
            "the database refused spooled message %s (%s); kept in %s",
            record.inbound.provider_id,
            type(exc).__name__,
            path,
        )
        return True

    def _done(self, record: _Record) -> None:
        segment = record.segment
        if segment is None:
            return
        with self._lock:
            segment.pending -= 1
            if segment.pending:
                return
            try:
                if segment.retired:
                    _scrub(segment.fd, segment.size)
                    segment.path.unlink(missing_ok=True)
                    os.close(segment.fd)
                elif segment.size:
                    _scrub(segment.fd, segment.size)
                    segment.size = 0
            except OSError:  # stored all the same; the file goes with its process
                log.exception("could not empty the spool file %s", segment.path.name)

    def _open_segment(self) -> _Segment:
        self._opened += 1
        name = f"{os.getpid()}-{self._opened}-{secrets.token_hex(4)}.jsonl"
        hidden = self.directory / f".{name}"
        fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = self.directory / name
        os.rename(hidden, path)
        return _Segment(path, fd)

    def _recover(self) -> None:
        """Moves the records of files whose process died, then deletes those files."""
        try:
            paths = sorted(self.directory.glob("*.jsonl"))
        except OSError:
            log.exception("could not list the spool folder %s", self.directory)
            return
        for path in paths:
            if path.name == REJECTED:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # another process recovered it
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive (this one's own files too)
                if os.fstat(fd).st_nlink == 0:
                    continue  # recovered and deleted since we listed it
                self._recover_file(path, fd)
            except Exception:
                log.exception("could not recover the spool file %s", path.name)
            finally:
                os.close(fd)

    def _recover_file(self, path: Path, fd: int) -> None:
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0) if size else b""
        records = []
        damaged = 0
        for line in data.split(b"\n"):
            if not line.strip(b"\0"):
                continue
            try:
                inbound, now = decode(line)
            except (ValueError, KeyError, TypeError):
                # A line cut short by a crash: its webhook was never answered 200.
                damaged += 1
                continue
            records.append(_Record(inbound, now, None))
        for start in range(0, len(records), self._max_batch):
            if not self._move(records[start : start + self._max_batch], stop_on_outage=True):
                return  # the file stays for the next attempt
        log.log(
            logging.WARNING if records or damaged else logging.INFO,
            "moved %s messages from the spool of a web process that stopped (%s)%s",
            len(records),
            path.name,
            f"; {damaged} cut-short lines left out" if damaged else "",
        )
        _scrub(fd, size)
        path.unlink(missing_ok=True)


def _scrub(fd: int, size: int) -> None:
    """Overwrites a spool file's records with zeros, then empties it."""
    if size:
        os.pwrite(fd, bytes(size), 0)
    os.ftruncate(fd, 0)
