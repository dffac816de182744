"""The web's inbound spool on the embedded default (bot/spool.py): a webhook is acknowledged
once its message is in the spool file, and the message reaches the database once and in the
order the webhooks were acknowledged, whatever dies or fails in between.

Issue 15: with the workers far behind, a webhook that waited for its own insert waited for
SQLite's write lock behind the workers' commits (ack p99 71-541 ms at 300 msg/s).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.core.messages import Channel, Inbound
from bot.db.database import Database
from bot.db.models import Message, utcnow
from bot.inbox import Accepted, store_batch
from bot.spool import REJECTED, SPOOL, InboundSpool, decode, encode

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def database(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """A migrated SQLite database: the spool runs on the embedded default only."""
    path = tmp_path / "bot.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}", first=True)
    yield db
    db.dispose()


def _inbound(n: int, body: str = "hi") -> Inbound:
    return Inbound(Channel.SMS, f"+97798{n:08d}", body, provider_id=f"SMspool{n}")


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _stored_ids(db: Database) -> list[str]:
    with db.read() as s:
        return list(
            s.scalars(
                select(Message.provider_sid).where(Message.direction == "in").order_by(Message.id)
            )
        )


class _Spool:
    """An InboundSpool on `db` that records what its mover reported stored."""

    def __init__(self, directory: Path, db: Database, **kwargs: object) -> None:
        self.stored: list[tuple[str, Accepted]] = []
        self.store_calls = 0
        self.db = db
        self.spool = InboundSpool(directory, self._store, self._stored, **kwargs)  # type: ignore[arg-type]

    def _store(self, batch: list[tuple[Inbound, bool, datetime]]) -> list[Accepted | BaseException]:
        self.store_calls += 1
        return store_batch(self.db, batch, None)

    def _stored(self, inbound: Inbound, accepted: Accepted) -> None:
        self.stored.append((inbound.provider_id or "", accepted))


def _lines(directory: Path) -> list[str]:
    return [
        decode(line)[0].provider_id or ""
        for line in (directory / SPOOL).read_bytes().splitlines()
        if line.strip(b"\0")
    ]


def test_a_record_round_trips() -> None:
    now = utcnow()
    inbound = Inbound(
        Channel.WHATSAPP,
        "+9779800000001",
        'नमस्ते "quoted"\nsecond line \ud800',  # a lone surrogate cannot break the line
        media_urls=("https://example.org/a.jpg",),
        provider_id="SMround",
        profile_name="Sita",
        received_at=now,
        route="twilio",
    )
    line = encode(inbound, now)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == (inbound, now)


def test_spooled_messages_reach_the_database_in_order_and_the_file_is_emptied(
    tmp_path: Path, database: Database
) -> None:
    directory = tmp_path / "spool"
    spool = _Spool(directory, database)
    for n in range(50):
        spool.spool.put(_inbound(n), utcnow())
    _until(lambda: len(spool.stored) == 50)
    assert _stored_ids(database) == [f"SMspool{n}" for n in range(50)]
    assert not any(accepted.duplicate for _, accepted in spool.stored)
    _until(lambda: (directory / SPOOL).stat().st_size == 0)  # no copy left on disk
    assert (directory / SPOOL).stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700
    spool.spool.close()


def test_the_mover_says_when_a_batch_is_in_the_database(tmp_path: Path, database: Database) -> None:
    """What rings the workers' feeds (bot/doorbell.py): called after each stored batch, when
    its messages can be read by another connection."""
    seen: list[list[str]] = []
    spool = _Spool(
        tmp_path / "spool", database, max_batch=4, moved=lambda: seen.append(_stored_ids(database))
    )
    for n in range(10):
        spool.spool.put(_inbound(n), utcnow())
    _until(lambda: len(spool.stored) == 10 and bool(seen) and len(seen[-1]) == 10)
    spool.spool.close()
    assert len(seen) >= 3  # once per batch of at most 4
    everything = [f"SMspool{n}" for n in range(10)]
    assert all(ids == everything[: len(ids)] and ids for ids in seen)  # each batch stored first


def test_a_repeated_delivery_is_stored_once(tmp_path: Path, database: Database) -> None:
    spool = _Spool(tmp_path / "spool", database)
    spool.spool.put(_inbound(1), utcnow())
    spool.spool.put(_inbound(1), utcnow())
    _until(lambda: len(spool.stored) == 2)
    assert [accepted.duplicate for _, accepted in spool.stored] == [False, True]
    assert _stored_ids(database) == ["SMspool1"]
    spool.spool.close()


def test_only_messages_with_a_provider_id_are_spooled(tmp_path: Path, database: Database) -> None:
    spool = _Spool(tmp_path / "spool", database)
    with pytest.raises(ValueError, match="provider id"):
        spool.spool.put(Inbound(Channel.SMS, "+9779800000001", "hi"), utcnow())
    spool.spool.close()


def test_the_file_stays_short_while_messages_keep_coming(
    tmp_path: Path, database: Database
) -> None:
    directory = tmp_path / "spool"
    spool = _Spool(directory, database, compact_bytes=2_000)
    sizes = []
    for n in range(300):
        spool.spool.put(_inbound(n, body="x" * 100), utcnow())
        sizes.append((directory / SPOOL).stat().st_size)
        if n % 50 == 0:
            time.sleep(0.05)
    _until(lambda: len(spool.stored) == 300)
    assert _stored_ids(database) == [f"SMspool{n}" for n in range(300)]
    assert max(sizes) < 300 * 200  # cut while they came, not only at the end
    _until(lambda: (directory / SPOOL).stat().st_size == 0)
    spool.spool.close()


def test_two_processes_share_one_file_and_one_mover_in_the_order_written(
    tmp_path: Path, database: Database
) -> None:
    """Two spools on one folder, as two web processes have: whichever took the mover's lock
    stores both one's messages in the order they were acknowledged (a contact's second
    message, taken by the other process, after its first); when its process goes, the
    other takes over."""
    directory = tmp_path / "spool"
    first = _Spool(directory, database, elect_every=0.05)
    time.sleep(0.1)
    second = _Spool(directory, database, elect_every=0.05)
    for n in range(40):
        (first if n % 2 else second).spool.put(_inbound(n), utcnow())
    _until(lambda: len(_stored_ids(database)) == 40)
    assert _stored_ids(database) == [f"SMspool{n}" for n in range(40)]
    assert len(first.stored) == 40 and second.stored == []  # one mover
    first.spool.close()  # its process ends
    second.spool.put(_inbound(40), utcnow())
    _until(lambda: "SMspool40" in [i for i, _ in second.stored])
    # What the first had stored but not yet cut off the file is found to be stored.
    assert [i for i, a in second.stored if not a.duplicate] == ["SMspool40"]
    assert _stored_ids(database) == [f"SMspool{n}" for n in range(41)]
    second.spool.close()


def test_a_write_that_fails_leaves_nothing_and_raises(
    tmp_path: Path, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "spool"
    blocked = threading.Event()

    def store(batch: list[tuple[Inbound, bool, datetime]]) -> list[Accepted | BaseException]:
        blocked.wait(10)  # keep the records in the file
        return store_batch(database, batch, None)

    stored: list[str] = []
    spool = InboundSpool(directory, store, lambda i, a: stored.append(i.provider_id or ""))
    spool.put(_inbound(1), utcnow())
    size = (directory / SPOOL).stat().st_size
    real_write = os.write

    def half_write(fd: int, data: bytes) -> int:
        return real_write(fd, data[: len(data) // 2])  # a disk that fills up

    monkeypatch.setattr("bot.spool.os.write", half_write)
    with pytest.raises(OSError, match="wrote"):
        spool.put(_inbound(2), utcnow())
    assert (directory / SPOOL).stat().st_size == size  # the half record was taken back
    monkeypatch.setattr("bot.spool.os.write", real_write)
    spool.put(_inbound(3), utcnow())
    assert _lines(directory) == ["SMspool1", "SMspool3"]
    blocked.set()
    _until(lambda: len(stored) == 2)
    assert _stored_ids(database) == ["SMspool1", "SMspool3"]
    spool.close()


def test_with_sync_each_record_is_flushed_before_put_returns(
    tmp_path: Path, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL (sync) an acknowledged message is on the disk, as a commit is."""
    directory = tmp_path / "spool"
    flushed: list[int] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        flushed.append(os.fstat(fd).st_size)
        real_fdatasync(fd)

    monkeypatch.setattr("bot.spool.os.fdatasync", fdatasync)
    spool = _Spool(directory, database, sync=True)
    spool.spool.put(_inbound(1), utcnow())
    assert flushed and flushed[-1] == (directory / SPOOL).stat().st_size  # its line included
    _until(lambda: len(spool.stored) == 1)
    spool.spool.close()

    # A flush that fails: the webhook is not acknowledged (OSError, a 503), the line stays,
    # and the provider's repeat is found to be stored already: stored once.
    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("bot.spool.os.fdatasync", failing)
    again = _Spool(directory, database, sync=True)
    with pytest.raises(OSError):
        again.spool.put(_inbound(2), utcnow())
    monkeypatch.setattr("bot.spool.os.fdatasync", real_fdatasync)
    again.spool.put(_inbound(2), utcnow())
    _until(lambda: [i for i, _ in again.stored].count("SMspool2") == 2)
    assert [i for i, a in again.stored if not a.duplicate] == ["SMspool2"]
    assert _stored_ids(database) == ["SMspool1", "SMspool2"]
    again.spool.close()


def test_without_sync_nothing_is_flushed(
    tmp_path: Path, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite (synchronous=NORMAL: commits are not flushed either) a put costs no flush."""
    flushed: list[int] = []
    monkeypatch.setattr("bot.spool.os.fdatasync", flushed.append)
    spool = _Spool(tmp_path / "spool", database, compact_bytes=500)
    for n in range(10):
        spool.spool.put(_inbound(n, body="x" * 100), utcnow())
    _until(lambda: len(spool.stored) == 10)
    spool.spool.close()
    assert flushed == []


def test_an_outage_is_waited_out_and_nothing_is_lost(tmp_path: Path, database: Database) -> None:
    outage = {"left": 3}

    def store(batch: list[tuple[Inbound, bool, datetime]]) -> list[Accepted | BaseException]:
        if outage["left"]:
            outage["left"] -= 1
            return [OperationalError("INSERT", {}, Exception("database is locked"))] * len(batch)
        return store_batch(database, batch, None)

    stored: list[str] = []
    spool = InboundSpool(tmp_path / "spool", store, lambda i, a: stored.append(i.provider_id or ""))
    for n in range(5):
        spool.put(_inbound(n), utcnow())
    _until(lambda: len(stored) == 5)
    assert outage["left"] == 0
    assert _stored_ids(database) == [f"SMspool{n}" for n in range(5)]
    spool.close()


def test_closing_twice_leaves_other_files_alone_and_a_late_put_fails(
    tmp_path: Path, database: Database
) -> None:
    """An exit handler closes again after an explicit close: the descriptor numbers the
    spool had may belong to other files by then."""
    spool = _Spool(tmp_path / "spool", database)
    spool.spool.put(_inbound(1), utcnow())
    spool.spool.close()
    other = tmp_path / "other"
    fds = [os.open(other, os.O_RDWR | os.O_CREAT) for _ in range(3)]  # reuse the numbers
    try:
        spool.spool.close()
        with pytest.raises(OSError):
            spool.spool.put(_inbound(2), utcnow())
        for fd in fds:
            os.fstat(fd)  # still open
        assert other.read_bytes() == b""
    finally:
        for fd in fds:
            os.close(fd)
    assert _stored_ids(database) == ["SMspool1"]


def test_what_an_outage_keeps_at_close_is_moved_by_the_next_mover(
    tmp_path: Path, database: Database
) -> None:
    directory = tmp_path / "spool"
    down = InboundSpool(
        directory,
        lambda batch: [OperationalError("INSERT", {}, Exception("disk I/O error"))] * len(batch),
        lambda i, a: None,
    )
    for n in range(3):
        down.put(_inbound(n), utcnow())
    time.sleep(0.3)
    down.close()  # the database never came back while it ran
    assert _stored_ids(database) == [] and _lines(directory) == [f"SMspool{n}" for n in range(3)]
    after = _Spool(directory, database)
    _until(lambda: len(after.stored) == 3)
    assert _stored_ids(database) == ["SMspool0", "SMspool1", "SMspool2"]
    _until(lambda: (directory / SPOOL).stat().st_size == 0)
    after.spool.close()


def test_a_message_the_database_refuses_is_kept_aside_not_dropped(
    tmp_path: Path, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def store(batch: list[tuple[Inbound, bool, datetime]]) -> list[Accepted | BaseException]:
        outcomes = store_batch(database, [b for b in batch if b[0].body != "bad"], None)
        return [ValueError("refused") if b[0].body == "bad" else outcomes.pop(0) for b in batch]

    directory = tmp_path / "spool"
    stored: list[str] = []
    spool = InboundSpool(directory, store, lambda i, a: stored.append(i.provider_id or ""))
    spool.put(_inbound(1), utcnow())
    spool.put(_inbound(2, body="bad"), utcnow())
    spool.put(_inbound(3), utcnow())
    _until(lambda: len(stored) == 2 and (directory / REJECTED).exists())
    spool.close()
    (line,) = (directory / REJECTED).read_bytes().splitlines()
    assert decode(line)[0].provider_id == "SMspool2"
    assert (directory / REJECTED).stat().st_mode & 0o777 == 0o600
    assert "SMspool2" in caplog.text and "ValueError" in caplog.text
    assert _stored_ids(database) == ["SMspool1", "SMspool3"]


def test_a_store_that_raises_sets_its_batch_aside_and_the_mover_goes_on(
    tmp_path: Path, database: Database
) -> None:
    """Not an outage, not one outcome per message: a bug. The batch is kept in
    rejected.jsonl, and the messages after it are stored."""
    calls = {"n": 0}

    def store(batch: list[tuple[Inbound, bool, datetime]]) -> list[Accepted | BaseException]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug")
        return store_batch(database, batch, None)

    directory = tmp_path / "spool"
    stored: list[str] = []
    spool = InboundSpool(directory, store, lambda i, a: stored.append(i.provider_id or ""))
    spool.put(_inbound(1), utcnow())
    _until(lambda: (directory / REJECTED).exists())
    spool.put(_inbound(2), utcnow())
    _until(lambda: stored == ["SMspool2"])
    spool.close()
    (line,) = (directory / REJECTED).read_bytes().splitlines()
    assert decode(line)[0].provider_id == "SMspool1"


def test_a_line_its_writer_left_unfinished_is_dropped_by_the_next_write(
    tmp_path: Path, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    (directory / SPOOL).write_bytes(
        encode(_inbound(1), utcnow()) + encode(_inbound(2), utcnow())[:25]
    )
    (directory / SPOOL).chmod(0o600)
    blocked = threading.Event()

    def store(batch: list[tuple[Inbound, bool, datetime]]) -> list[Accepted | BaseException]:
        blocked.wait(10)
        return store_batch(database, batch, None)

    spool = InboundSpool(directory, store, lambda i, a: None)
    spool.put(_inbound(3), utcnow())
    assert _lines(directory) == ["SMspool1", "SMspool3"]
    assert "cut short" in caplog.text
    blocked.set()
    _until(lambda: _stored_ids(database) == ["SMspool1", "SMspool3"])
    spool.close()


def test_a_killed_web_process_s_messages_are_moved_once_and_a_cut_line_left_out(
    tmp_path: Path, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A web process, the mover, spools 200 messages and is killed (kill -9) before it
    stores any (its database never answers); another takes over and stores all 200, and the
    3 already stored (stored, but not yet cut off the file) are not stored twice. A line the
    kill cut short is dropped."""
    directory = tmp_path / "spool"
    script = textwrap.dedent(
        f"""
        import threading
        from pathlib import Path
        from bot.core.messages import Channel, Inbound
        from bot.db.models import utcnow
        from bot.spool import InboundSpool
        spool = InboundSpool(Path({str(directory)!r}), lambda b: threading.Event().wait(),
                             lambda i, a: None)
        for n in range(200):
            spool.put(Inbound(Channel.SMS, f"+97798{{n:08d}}", "hi",
                              provider_id=f"SMspool{{n}}"), utcnow())
        print("spooled", flush=True)
        threading.Event().wait()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "spooled"
        after = _Spool(directory, database, elect_every=0.05)
        time.sleep(0.2)
        assert after.stored == []  # the live process moves (or tries to)
        store_batch(database, [(_inbound(n), False, utcnow()) for n in range(3)], None)
        with (directory / SPOOL).open("ab") as cut:
            cut.write(encode(_inbound(999), utcnow())[:30])  # a write the kill cut short
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    _until(lambda: len(_stored_ids(database)) == 200)
    _until(lambda: (directory / SPOOL).stat().st_size == 0)
    assert sorted(_stored_ids(database)) == sorted(f"SMspool{n}" for n in range(200))
    assert [i for i, _ in after.stored] == [f"SMspool{n}" for n in range(200)]  # in order
    assert sum(accepted.duplicate for _, accepted in after.stored) == 3
    assert "cut short" in caplog.text
    after.spool.close()
