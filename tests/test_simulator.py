"""The web simulator drives the same pipeline and never touches real contacts.

Each browser session chats from a random number of its own and sees only its own thread."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.db.models import Contact
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.support.phone import Phone


def token(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/simulator/").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match
    return match.group(1)


def say(client, phone: str, body: str, csrf: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/simulator/messages", json={"phone": phone, "body": body}, headers={"X-CSRF-Token": csrf}
    )


def test_chat_through_the_simulator(client, twilio: FakeTwilio) -> None:  # type: ignore[no-untyped-def]
    csrf = token(client)
    assert say(client, "9800000009", "भाषा", csrf).status_code == 200
    thread = client.get("/simulator/messages").get_json()["messages"]
    assert [m["direction"] for m in thread] == ["in", "out"]
    assert thread[1]["status"] == "delivered"
    assert "English" in thread[1]["body"]
    assert twilio.calls == []  # the simulator never reaches the provider


def test_simulator_stop_does_not_opt_out_the_real_contact(
    client, twilio: FakeTwilio, runtime: Runtime
) -> None:  # type: ignore[no-untyped-def]
    real = Phone(client, twilio, "+9779800000010")
    assert real.send("hi")
    csrf = token(client)
    with client.session_transaction() as browser:  # the simulator drew the same number
        browser["sim_phone"] = "+9779800000010"
    assert say(client, "+9779800000010", "STOP", csrf).status_code == 200
    assert real.send("hi")
    with runtime.db.read() as s:
        rows = s.execute(
            select(Contact.simulated, Contact.opted_out).order_by(Contact.simulated)
        ).all()
    assert [tuple(r) for r in rows] == [(False, False), (True, True)]


def test_simulator_requires_its_csrf_token(client) -> None:  # type: ignore[no-untyped-def]
    token(client)
    assert say(client, "9800000009", "hi", "wrong").status_code == 403


def test_simulator_rejects_bad_requests(client) -> None:  # type: ignore[no-untyped-def]
    csrf = token(client)
    response = client.post("/simulator/messages", data="not json", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 400
    assert client.get("/simulator/messages?after=x").status_code == 400
    assert client.post("/simulator/phone").status_code == 403  # no token


def test_a_typed_number_is_ignored(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    say(client, "+9779800000010", "hi", token(client))
    with runtime.db.read() as s:
        [number] = s.scalars(select(Contact.phone)).all()
    assert number != "+9779800000010"
    assert number == client.get("/simulator/messages").get_json()["phone"]


def test_each_session_sees_only_its_own_thread(app) -> None:  # type: ignore[no-untyped-def]
    first, second = app.test_client(), app.test_client()
    say(first, "", "a secret only the first tester typed", token(first))
    number = first.get("/simulator/messages").get_json()["phone"]
    seen = second.get(f"/simulator/messages?phone={number}").get_json()
    assert seen["phone"] != number
    assert seen["messages"] == []
    assert b"a secret only" not in second.get("/simulator/messages?after=0").data


def test_starting_over_gives_a_new_number_and_an_empty_thread(client) -> None:  # type: ignore[no-untyped-def]
    csrf = token(client)
    say(client, "", "hi", csrf)
    before = client.get("/simulator/messages").get_json()
    renewed = client.post("/simulator/phone", headers={"X-CSRF-Token": csrf}).get_json()
    after = client.get("/simulator/messages").get_json()
    assert renewed["phone"] == after["phone"] != before["phone"]
    assert len(before["messages"]) == 2 and after["messages"] == []


def test_simulator_page_escapes_nothing_into_html(client) -> None:  # type: ignore[no-untyped-def]
    csrf = token(client)
    say(client, "9800000011", "<script>alert(1)</script>", csrf)
    page = client.get("/simulator/")
    assert b"<script>alert" not in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    thread = client.get("/simulator/messages")
    assert thread.mimetype == "application/json"


def test_simulator_can_be_switched_off(env, runtime) -> None:  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.settings import Settings

    settings = Settings.from_mapping(env | {"SIMULATOR_ENABLED": "false"})
    client = create_app(settings, runtime).test_client()
    assert client.get("/simulator/").status_code == 404
