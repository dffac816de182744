"""The mover rings the workers' feeds (bot/doorbell.py): a feed sleeps until messages are
stored instead of polling the table every few milliseconds."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from bot.db.database import Database
from bot.doorbell import Doorbell, Ringer
from bot.feed import InboxFeed
from tests.test_feed import _handle_all, _store, _until, db  # noqa: F401 (the fixture)


def test_a_ring_wakes_the_feed_and_every_waiting_ring_is_taken_at_once(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path, "worker-1")
    ringer = Ringer(tmp_path)
    try:
        assert not bell.wait(0.05)  # nobody rang
        ringer.ring()
        ringer.ring()
        assert bell.wait(10)
        assert not bell.wait(0.05)  # both rings were taken by the first wait
        assert bell.rings == 1
    finally:
        ringer.close()
        bell.close()
    assert not bell.path.exists()


def test_the_ringer_rings_every_feed_and_removes_the_sockets_of_dead_ones(
    tmp_path: Path,
) -> None:
    first, second = Doorbell(tmp_path, "worker-1"), Doorbell(tmp_path, "worker/2 ✓")
    dead = tmp_path / "worker-3-99999.sock"
    gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    gone.bind(str(dead))
    gone.close()  # its process died without removing the file
    ringer = Ringer(tmp_path)
    try:
        ringer.ring()
        assert first.wait(10) and second.wait(10)
        assert not dead.exists()
        assert second.path.name.startswith("worker_2__-")  # a name safe for a file
    finally:
        ringer.close()
        first.close()
        second.close()


def test_a_ringer_finds_a_feed_started_after_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("bot.doorbell.RELIST_EVERY", 0.0)
    ringer = Ringer(tmp_path)
    ringer.ring()  # nobody there yet
    bell = Doorbell(tmp_path, "late")
    try:
        ringer.ring()
        assert bell.wait(10)
    finally:
        ringer.close()
        bell.close()


def test_a_feed_asleep_on_its_doorbell_reads_the_table_when_rung(
    db: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    handled: list[int] = []
    bell = Doorbell(tmp_path / "bells", "worker-1")
    # Polls far apart: within the test only a ring can make the feed look.
    feed = InboxFeed(db, _handle_all(db, handled), threads=2, poll=60, idle_poll=60, doorbell=bell)
    feed.start()
    ringer = Ringer(tmp_path / "bells")
    try:
        time.sleep(0.2)  # the first look at the empty table is over
        contact = _store(db, "+15550000001")
        time.sleep(0.3)
        assert handled == []  # stored, not rung: the feed sleeps on
        ringer.ring()
        _until(lambda: handled == [contact])
        second = _store(db, "+15550000002")
        ringer.ring()  # after its first ring the feed sleeps until the next as well
        _until(lambda: handled == [contact, second])
    finally:
        ringer.close()
        stopped = threading.Thread(target=feed.close)
        stopped.start()
        stopped.join(10)
    assert not stopped.is_alive()  # close woke the sleeping watcher
    assert not bell.path.exists()
