"""Conversations: the list, keyset pages, filters and search, threads, replies by hand."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.db.models import AuditEvent, Contact, Message
from bot.runtime import Runtime
from dashboard.accounts import Account
from dashboard.conversations import Cursor, FilterError, Filters, list_conversations
from testkit.fake_rasa import FakeRasa
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.conftest import Accounts, Site
from tests.dashboard.support import contact_id, csrf_token, signed_in, tag
from tests.support.builders import BASE_URL, add_contact
from tests.support.clock import FakeClock
from tests.support.phone import Phone, post_signed

COORDINATOR = Account(1, "c@example.org", "C", "coordinator")


def test_the_list_is_latest_first_and_pages_never_skip_or_repeat(
    runtime: Runtime, clock: FakeClock
) -> None:
    # Pairs of contacts share a time: keyset pages must still cover everyone exactly once.
    times = {
        add_contact(runtime.db, last_inbound_at=clock.now - timedelta(minutes=n // 2)): n // 2
        for n in range(7)
    }
    add_contact(runtime.db)  # never wrote: not a conversation
    seen: list[int] = []
    cursor = None
    with runtime.db.read() as session:
        while True:
            page = list_conversations(session, COORDINATOR, Filters(), cursor, limit=3)
            seen += [r.contact_id for r in page.rows]
            if page.next_cursor is None:
                break
            cursor = Cursor.decode(page.next_cursor)
    # Latest first (fewest minutes ago), and the higher id first within a time.
    assert seen == sorted(times, key=lambda i: (-times[i], i), reverse=True)


def test_the_page_links_walk_the_whole_list(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, clock: FakeClock
) -> None:
    for n in range(55):
        add_contact(runtime.db, last_inbound_at=clock.now - timedelta(seconds=n))
    client = as_role("coordinator")
    first = client.get("/dashboard/conversations").get_data(as_text=True)
    link = re.search(r'href="(\?after=[^"]+)">Older conversations', first)
    assert link
    second = client.get("/dashboard/conversations" + link.group(1).replace("&amp;", "&"))
    phones = re.findall(r'class="who">(\+\d+)', first) + re.findall(
        r'class="who">(\+\d+)', second.get_data(as_text=True)
    )
    assert len(phones) == len(set(phones)) == 55
    assert "Older conversations" not in second.get_data(as_text=True)


MALFORMED = [
    "after=12.x",
    "after=999999999999999999999999999999999999999999",
    "before=-3",
    "before=abc",
    "since=2026-13-01",
    "channel=fax",
    "language=fr",
    "topic=faq_nothing",
]


def test_malformed_list_arguments_are_a_400(sqlite_site: Site) -> None:
    client = sqlite_site.client("coordinator")
    for query in MALFORMED:
        response = client.get(f"/dashboard/conversations?{query}")
        assert response.status_code == 400, query
    short = client.get("/dashboard/conversations?q=ab")
    assert short.status_code == 400 and b"at least 3 characters" in short.data
    assert client.get("/dashboard/conversations/12/?x").status_code == 404


def test_filters_say_what_is_wrong() -> None:
    with pytest.raises(FilterError, match="at least 3 characters"):
        Filters.build(text="ab")
    with pytest.raises(FilterError, match="at least 3 digits"):
        Filters.build(phone="+9")
    with pytest.raises(FilterError, match="before the start"):
        Filters.build(since=date(2026, 2, 1), until=date(2026, 1, 1))


def _dashboard(app: Flask, runtime: Runtime, user_id: int) -> FlaskClient:
    return signed_in(app, runtime.db, user_id)


def test_search_and_filters_through_the_pipeline(
    nlu_app: Flask,
    nlu_runtime: Runtime,
    nlu_accounts: Accounts,
    member: Phone,
    rasa: FakeRasa,
    twilio: FakeTwilio,
    clock: FakeClock,
) -> None:
    rasa.answers["what are the steps"] = [("faq_steps", 0.93)]
    rasa.answers["mobilization?"] = [("faq_meaning", 0.41), ("faq_steps", 0.35)]
    member.send("what are the steps")
    clock.advance(3600)
    other = Phone(member.client, twilio, whatsapp=True)
    other.send("mobilization?")
    client = _dashboard(nlu_app, nlu_runtime, nlu_accounts.coordinator)

    def numbers(query: str) -> list[str]:
        page = client.get(f"/dashboard/conversations?{query}")
        assert page.status_code == 200, query
        return re.findall(r'class="who">(\+\d+)', page.get_data(as_text=True))

    assert numbers("") == [other.number, member.number]
    assert numbers("channel=whatsapp") == [other.number]
    assert numbers("channel=sms") == [member.number]
    assert numbers("topic=faq_steps") == [member.number]
    assert numbers("unanswered=1") == [other.number]
    assert numbers(f"phone={member.number[-6:]}") == [member.number]
    assert numbers("since=2026-11-01&until=2026-11-01") == [other.number, member.number]
    assert numbers("since=2026-11-02") == []
    assert numbers("q=STEPS") == [member.number]  # case does not matter
    assert numbers("q=mobilization&unanswered=1") == [other.number]
    assert numbers("q=100%25") == []  # % is a character, not a wildcard
    thread = client.get(f"/dashboard/conversations/{contact_id(nlu_runtime.db, other.number)}")
    text = thread.get_data(as_text=True)
    assert "low confidence" in text and "0.41" in text
    assert re.search(r"status-(sent|delivered|queued)", text)


def test_a_reply_by_hand_pauses_the_bot_until_released(
    app: Flask,
    runtime: Runtime,
    accounts: Accounts,
    phone: Phone,
    twilio: FakeTwilio,
    clock: FakeClock,
) -> None:
    assert phone.send("hi")  # the bot answers
    contact = contact_id(runtime.db, phone.number)
    tag(runtime.db, contact, "ward-3")
    client = signed_in(app, runtime.db, accounts.mobilizer)
    token = csrf_token(client, f"/dashboard/conversations/{contact}")
    response = client.post(
        f"/dashboard/conversations/{contact}/reply",
        data={"csrf_token": token, "body": "Namaste, I will call you today.", "pause_hours": "4"},
    )
    assert response.status_code == 303
    assert phone.replies() == ["Namaste, I will call you today."]
    assert phone.send("thank you, when?") == []  # a person answers now, not the bot
    assert phone.send("STOP")  # STOP still works while paused
    assert phone.send("START")
    page = client.get(f"/dashboard/conversations/{contact}").get_data(as_text=True)
    assert "by hand: Mob" in page and "Release to the bot now" in page
    client.post(f"/dashboard/conversations/{contact}/release", data={"csrf_token": token})
    assert phone.send("hi again")  # the bot answers again
    # Without a release, the pause ends by itself.
    client.post(
        f"/dashboard/conversations/{contact}/reply",
        data={"csrf_token": token, "body": "one more thing", "pause_hours": "1"},
    )
    assert phone.replies() == ["one more thing"]
    assert phone.send("ok") == []
    clock.advance(3601)
    assert phone.send("hi") != []
    with runtime.db.read() as session:
        row = session.get(Contact, contact)
        assert row is not None and row.paused_until is not None
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        manual = session.scalar(
            select(Message).where(Message.kind == "manual_reply").order_by(Message.id)
        )
    assert actions == ["manual_reply", "handoff_released", "manual_reply"]
    assert manual is not None and manual.status in ("queued", "sent") and manual.channel == "sms"


def test_bad_replies_are_refused_and_nothing_is_sent(
    app: Flask, runtime: Runtime, accounts: Accounts, phone: Phone, twilio: FakeTwilio
) -> None:
    phone.send("hi")
    contact = contact_id(runtime.db, phone.number)
    client = signed_in(app, runtime.db, accounts.coordinator)
    token = csrf_token(client)
    path = f"/dashboard/conversations/{contact}/reply"
    before = len(twilio.sent)
    for data in (
        {"body": "x" * 1601, "pause_hours": "24"},
        {"body": "   ", "pause_hours": "24"},
        {"body": "hello", "pause_hours": "5"},
        {"body": "hello", "pause_hours": "lots"},
    ):
        response = client.post(path, data={"csrf_token": token, **data}, follow_redirects=True)
        assert response.status_code == 200
        assert "flash error" in response.get_data(as_text=True)
    phone.send("STOP")
    response = client.post(
        path, data={"csrf_token": token, "body": "are you there?", "pause_hours": "24"},
        follow_redirects=True,
    )  # fmt: skip
    assert "opted out" in response.get_data(as_text=True)
    assert len(twilio.sent) == before + 1  # only the STOP confirmation
    assert (
        client.post(
            "/dashboard/conversations/999999/reply",
            data={"csrf_token": token, "body": "hi", "pause_hours": "24"},
        ).status_code
        == 404
    )


def test_a_status_report_shows_in_the_thread(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, phone: Phone, twilio: FakeTwilio
) -> None:
    phone.send("hi")
    [call] = twilio.sent
    form = {"MessageSid": call.sid or "", "MessageStatus": "undelivered", "ErrorCode": "30003",
            "AccountSid": call.account_sid}  # fmt: skip
    assert post_signed(phone.client, "/webhooks/twilio/status", form).status_code == 200
    page = as_role("coordinator").get(
        f"/dashboard/conversations/{contact_id(runtime.db, phone.number)}"
    )
    assert "status-undelivered" in page.get_data(as_text=True)
    assert "error 30003" in page.get_data(as_text=True)
    assert BASE_URL  # the signed URL the status came to


def test_search_looks_back_window_by_window(
    runtime: Runtime, phone: Phone, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dashboard.conversations as conversations

    for n in range(6):
        phone.send(f"water tap {n}" if n % 3 == 0 else f"hello {n}")  # each gets a reply too
    monkeypatch.setattr(conversations, "SEARCH_WINDOW", 4)  # two messages in, two out
    found: list[str] = []
    windows = 0
    before = None
    with runtime.db.read() as session:
        while True:
            page = conversations.search_messages(
                session, COORDINATOR, Filters.build(text="water"), before, limit=50
            )
            windows += 1
            found += [hit.body for hit in page.rows]
            if page.next_cursor is None:
                break
            assert page.searched_to is not None  # it says how far back it looked
            before = int(page.next_cursor)
    assert found == ["water tap 3", "water tap 0"]
    # SQLite scans window by window; PostgreSQL's trigram index needs no windows.
    assert windows == (3 if runtime.db.is_sqlite else 1)


def test_phone_search_with_few_and_many_matches(
    runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dashboard.conversations as conversations

    for n in range(4):
        add_contact(
            runtime.db, f"+97798000{n:05d}", last_inbound_at=clock.now - timedelta(minutes=n)
        )
    with runtime.db.read() as session:
        for limit in (500, 1):  # by id, then by walking the list
            monkeypatch.setattr(conversations, "PHONE_IDS", limit)
            many = list_conversations(session, COORDINATOR, Filters.build(phone="98000"))
            one = list_conversations(session, COORDINATOR, Filters.build(phone="0000002"))
            assert [r.phone for r in many.rows] == [f"+97798000{n:05d}" for n in range(4)]
            assert [r.phone for r in one.rows] == ["+9779800000002"]
