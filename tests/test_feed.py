"""The embedded default's inbound feed (bot/feed.py): the messages table as the worker's queue."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import click
import pytest
from sqlalchemy import text

from bot.cli.worker import parse_share
from bot.core.messages import Channel, Inbound
from bot.db.database import Database
from bot.feed import InboxFeed
from bot.inbox import accept
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_twilio import FakeTwilio
from tests.support.clock import FakeClock


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    return sqlite_db


def _store(db: Database, sender: str, body: str = "hello") -> int:
    inbound = Inbound(channel=Channel.SMS, sender=sender, body=body)
    return accept(db, inbound).contact_id


def _handle_all(db: Database, handled: list[int]) -> Callable[[int], bool]:
    """Marks the contact's waiting messages processed, as a worker's turns would."""

    def handle(contact_id: int) -> bool:
        with db.begin() as conn:
            conn.execute(
                text(
                    "UPDATE messages SET status = 'processed' WHERE contact_id = :c"
                    " AND direction = 'in' AND status = 'received'"
                ),
                {"c": contact_id},
            )
        handled.append(contact_id)
        return False

    return handle


def _waiting(db: Database) -> int:
    with db.begin_read() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM messages WHERE direction = 'in' AND status = 'received'")
            ).scalar_one()
        )


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_messages_stored_before_and_after_the_start_are_handled(db: Database) -> None:
    """A new feed begins from the oldest waiting message: what a dead worker left is found."""
    before = [_store(db, f"+1555000{n:04d}") for n in range(5)]
    handled: list[int] = []
    feed = InboxFeed(db, _handle_all(db, handled), threads=4)
    feed.start()
    try:
        _until(lambda: _waiting(db) == 0)
        after = [_store(db, f"+1555100{n:04d}") for n in range(5)]
        _until(lambda: _waiting(db) == 0)
    finally:
        feed.close()
    assert sorted(set(handled)) == sorted(before + after)


def test_one_thread_per_contact_and_a_message_arriving_meanwhile_is_handled_after(
    db: Database,
) -> None:
    contact = _store(db, "+15550000001", "first")
    running = Counter[int]()
    overlaps: list[int] = []
    turns: list[int] = []
    lock = threading.Lock()
    inner = _handle_all(db, [])
    second_stored = threading.Event()

    def handle(contact_id: int) -> bool:
        with lock:
            running[contact_id] += 1
            if running[contact_id] > 1:
                overlaps.append(contact_id)
        try:
            if not turns:
                _store(db, "+15550000001", "second")  # arrives while the first is handled
                second_stored.set()
                time.sleep(0.1)  # the feed reads it and offers the contact meanwhile
            turns.append(contact_id)
            return inner(contact_id)
        finally:
            with lock:
                running[contact_id] -= 1

    feed = InboxFeed(db, handle, threads=8, poll=0.001)
    feed.start()
    try:
        _until(lambda: second_stored.is_set() and _waiting(db) == 0 and feed.busy == 0)
    finally:
        feed.close()
    assert overlaps == []
    assert turns == [contact, contact]


def test_a_contact_with_messages_left_is_queued_again_behind_the_others(db: Database) -> None:
    handled: list[int] = []

    def handle(contact_id: int) -> bool:
        handled.append(contact_id)
        return handled.count(contact_id) == 1 and contact_id == 101  # stopped with some left

    feed = InboxFeed(db, handle, threads=1)
    feed.offer(101)
    feed.offer(202)
    feed.start()
    try:
        _until(lambda: feed.busy == 0)
    finally:
        feed.close()
    assert handled == [101, 202, 101]


def test_shares_split_the_contacts_between_feeds(db: Database) -> None:
    contacts = [_store(db, f"+1555000{n:04d}") for n in range(9)]
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
    feeds = [InboxFeed(db, _handle_all(db, seen[k]), threads=2, share=(k, 3)) for k in range(3)]
    for feed in feeds:
        feed.start()
    try:
        _until(lambda: _waiting(db) == 0)
    finally:
        for feed in feeds:
            feed.close()
    for k, handled in seen.items():
        assert handled and all(c % 3 == k for c in handled)
    assert sorted(c for handled in seen.values() for c in handled) == sorted(contacts)


def test_a_failing_contact_is_logged_and_the_others_go_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    bad = _store(db, "+15550000001")
    good = _store(db, "+15550000002")
    handled: list[int] = []
    inner = _handle_all(db, handled)

    def handle(contact_id: int) -> bool:
        if contact_id == bad:
            raise RuntimeError("boom")
        return inner(contact_id)

    feed = InboxFeed(db, handle, threads=1)
    with caplog.at_level(logging.ERROR, logger="bot.feed"):
        feed.start()
        try:
            _until(lambda: handled == [good])
        finally:
            feed.close()
    assert f"handling contact {bad} failed" in caplog.text
    assert _waiting(db) == 1  # the bad one's message waits for the sweeper


def test_settings_are_checked(db: Database, postgres_url: str) -> None:
    with pytest.raises(ValueError, match=r"k must be in 0\.\.n-1"):
        InboxFeed(db, lambda _: False, threads=1, share=(3, 3))
    pg = Database(postgres_url)
    try:
        with pytest.raises(ValueError, match="SQLite"):
            InboxFeed(pg, lambda _: False, threads=1)
    finally:
        pg.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_web_on_the_embedded_default_stores_without_enqueueing(
    settings: Settings, clock: FakeClock, twilio: FakeTwilio
) -> None:
    """The web leaves the message in the table; a worker's feed answers it."""
    huey = make_huey(settings)
    web = Runtime(settings, huey=huey, clock=clock, deferred_enqueue=True)
    worker = Runtime(settings, huey=make_huey(settings), clock=clock, background=True)
    try:
        assert web.inbound_feed and worker.inbound_feed
        accepted = web.accept(Inbound(channel=Channel.SMS, sender="+15550000001", body="HELP"))
        assert not accepted.duplicate
        assert huey.pending_count() == 0
        feed = worker.make_feed(threads=2)
        feed.start()
        _until(lambda: _waiting(worker.db) == 0 and len(twilio.sent) == 1)
    finally:
        worker.close()
        web.close()
    assert twilio.sent[0].form["To"] == "+15550000001"


def test_a_new_message_given_a_seen_id_back_is_found_by_the_rescan(db: Database) -> None:
    """SQLite hands the id of a deleted newest row to the next one (no AUTOINCREMENT): an
    erasure of the newest messages makes a new message's id one the feed has seen."""
    first = _store(db, "+15550000001")
    handled: list[int] = []
    feed = InboxFeed(db, _handle_all(db, handled), threads=2, rescan=0.2)
    feed.start()
    try:
        _until(lambda: handled == [first])
        seen = feed.seen
        with db.begin() as conn:  # the person is erased: their messages and contact go
            conn.execute(text("DELETE FROM messages WHERE contact_id = :c"), {"c": first})
            conn.execute(text("DELETE FROM contacts WHERE id = :c"), {"c": first})
        second = _store(db, "+15550000002")
        with db.begin_read() as conn:
            reused = conn.execute(
                text("SELECT id FROM messages WHERE contact_id = :c"), {"c": second}
            ).scalar_one()
        assert reused <= seen  # the situation this test is about
        _until(lambda: _waiting(db) == 0, timeout=5)
    finally:
        feed.close()
    assert handled == [first, second]


def test_a_workers_share_is_k_of_n_and_a_bad_one_names_the_option() -> None:
    assert parse_share("1/1") == (0, 1)
    assert parse_share("3/3") == (2, 3)
    for bad in ("0/2", "3/2", "two/3", "1/", "1/2/3"):
        with pytest.raises(click.BadParameter) as caught:
            parse_share(bad)
        assert "--share" in caught.value.format_message()


def test_a_workers_name_must_fit_its_column_and_a_bad_one_names_the_option() -> None:
    from click.testing import CliRunner

    from bot.cli.worker import check_name, worker

    assert check_name(None) is None and check_name("host:42/worker-1") == "host:42/worker-1"
    for bad in ("", "w" * 121):
        with pytest.raises(click.BadParameter) as caught:
            check_name(bad)
        assert "--name" in caught.value.format_message()
    result = CliRunner().invoke(worker, ["--name", "w" * 121])
    assert result.exit_code == 2 and "--name" in result.output, result.output


def test_backlogged_while_contacts_wait_for_a_handler_thread(db: Database) -> None:
    """What the worker's turn committer asks before it waits for more turns (bot/runtime.py):
    with every thread taken, waiting would hold up contacts already queued."""
    release = threading.Event()
    started = threading.Event()
    inner = _handle_all(db, [])

    def handle(contact_id: int) -> bool:
        started.set()
        release.wait(10)
        return inner(contact_id)

    feed = InboxFeed(db, handle, threads=1, poll=0.001)
    backlogs: list[bool] = []
    feed.on_backlog = lambda: backlogs.append(feed.backlogged())
    assert not feed.backlogged()
    _store(db, "+15550000001")
    feed.start()
    try:
        assert started.wait(10)
        assert not feed.backlogged()  # the one thread is taken, nobody waits
        assert backlogs == []  # the thread was free: queued without a backlog
        _store(db, "+15550000002")
        _until(lambda: feed.busy == 2)
        assert feed.backlogged()
        assert backlogs == [True]  # told as the second contact was queued
        release.set()
        _until(lambda: feed.busy == 0)
        assert not feed.backlogged()
    finally:
        release.set()
        feed.close()
