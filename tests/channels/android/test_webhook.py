"""The gateway's webhooks: signatures, the timestamp window, malformed bodies, repeats, statuses."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.channels.android.api import sign
from bot.db.models import Contact, Message, MessageStatusEvent
from bot.runtime import Runtime
from testkit.fake_android import FakeAndroidPhone, Webhook
from testkit.servers import LoopbackServer
from tests.support.android import EVENTS_PATH, SHARED_KEY, AndroidPerson, post
from tests.support.builders import new_phone


def stored(runtime: Runtime) -> tuple[int, int]:
    with runtime.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Contact)) or 0,
            s.scalar(select(func.count()).select_from(Message)) or 0,
        )


def resigned(webhook: Webhook, key: str, stamp: str | None = None, body: bytes | None = None):  # type: ignore[no-untyped-def]
    body = webhook.body if body is None else body
    stamp = stamp or webhook.headers["X-Timestamp"]
    headers = webhook.headers | {"X-Timestamp": stamp, "X-Signature": sign(key, body, stamp)}
    return Webhook(body, headers)


def forgeries(phone: FakeAndroidPhone) -> list[Webhook]:
    real = phone.received("HELP", new_phone())
    now = int(time.time())
    unsigned = Webhook(real.body, {"Content-Type": "application/json"})
    no_stamp = Webhook(real.body, {k: v for k, v in real.headers.items() if k != "X-Timestamp"})
    tampered = Webhook(real.body.replace(b"HELP", b"STOP"), real.headers)
    return [
        unsigned,
        no_stamp,
        tampered,
        resigned(real, "not-the-signing-key"),
        # Well outside the 300 s window: `now` is truncated to the second, so a stamp of
        # now + 301 could land 300.01 s ahead of the check and pass (seen once in CI).
        resigned(real, phone.signing_key, stamp=str(now - 305)),  # stale
        resigned(real, phone.signing_key, stamp=str(now + 305)),  # from the future
        resigned(real, phone.signing_key, stamp="12.5"),
        Webhook(real.body, real.headers | {"X-Signature": "zz" * 32}),
    ]


def test_forged_unsigned_and_stale_webhooks_are_refused_and_nothing_stored(
    client, runtime: Runtime, phones: list[FakeAndroidPhone]
) -> None:  # type: ignore[no-untyped-def]
    for forged in forgeries(phones[0]):
        assert post(client, forged).status_code == 403
    assert stored(runtime) == (0, 0)


def test_each_phone_key_and_the_shared_key_are_accepted(
    client, runtime: Runtime, phones: list[FakeAndroidPhone]
) -> None:  # type: ignore[no-untyped-def]
    for phone in phones:
        assert post(client, phone.received("hi", new_phone())).status_code == 200
    shared = resigned(phones[0].received("hi", new_phone()), SHARED_KEY)
    assert post(client, shared).status_code == 200
    assert stored(runtime)[0] == 4


def test_without_a_gateway_configured_everything_is_refused(
    client, runtime: Runtime, phones: list[FakeAndroidPhone], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(runtime, "settings", runtime.settings.with_provider("android", None))
    assert post(client, phones[0].received("HELP", new_phone())).status_code == 403
    assert stored(runtime) == (0, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"event": "sms:received", "id": "x"}',  # no payload
        b'{"event": 7, "payload": {}}',
        b'{"event": "sms:received", "payload": {"messageId": "m", "message": "hi"}}',  # no sender
        b'{"event": "sms:received", "payload": {"messageId": "m", "message": "hi", '
        b'"phoneNumber": "not-a-number"}}',
        b'{"event": "sms:received", "payload": {"message": "hi", "phoneNumber": "+9779800000001"}}',
        b'{"event": "sms:received", "payload": {"messageId": "m", "message": 5, '
        b'"phoneNumber": "+9779800000001"}}',
        b'{"event": "sms:delivered", "payload": {"deliveredAt": "2026-11-30T05:00:00Z"}}',
        b"\xff\xfe",
    ],
)
def test_malformed_signed_bodies_are_400_and_nothing_stored(
    client, runtime: Runtime, phones: list[FakeAndroidPhone], body: bytes
) -> None:  # type: ignore[no-untyped-def]
    stamp = str(int(time.time()))
    headers = {"X-Timestamp": stamp, "X-Signature": sign(phones[0].signing_key, body, stamp)}
    assert client.post(EVENTS_PATH, data=body, headers=headers).status_code == 400
    assert stored(runtime) == (0, 0)


def test_a_too_long_text_is_400(client, runtime: Runtime, phones: list[FakeAndroidPhone]) -> None:  # type: ignore[no-untyped-def]
    assert post(client, phones[0].received("x" * 5000, new_phone())).status_code == 400
    assert stored(runtime) == (0, 0)


def test_a_repeated_delivery_is_stored_and_answered_once(
    person: AndroidPerson, runtime: Runtime, phones: list[FakeAndroidPhone]
) -> None:
    webhook = person.via.received("HELP", person.number)
    assert post(person.client, webhook).status_code == 200
    assert post(person.client, webhook).status_code == 200  # the app retries
    # The same SMS through a second registration (local and cloud): another event id.
    again = json.loads(webhook.body)
    again["id"] = "another-event-id"
    assert (
        post(person.client, person.via.signed("sms:received", again["payload"])).status_code == 200
    )
    assert stored(runtime) == (1, 2)
    assert len(person.replies()) == 1


def test_other_events_are_acknowledged_and_ignored(
    client, runtime: Runtime, phones: list[FakeAndroidPhone]
) -> None:  # type: ignore[no-untyped-def]
    ping = phones[0].signed("system:ping", {"health": {"status": "pass"}})
    assert post(client, ping).status_code == 200
    assert post(client, phones[0].signed("mms:received", {"messageId": "m"})).status_code == 200
    assert stored(runtime) == (0, 0)


def outbound(runtime: Runtime) -> Message:
    with runtime.db.read() as s:
        return s.scalars(select(Message).where(Message.direction == "out")).one()


def test_delivery_events_move_the_message_on_and_repeats_change_nothing(
    person: AndroidPerson, runtime: Runtime, phones: list[FakeAndroidPhone]
) -> None:
    assert person.send("HELP")
    assert outbound(runtime).status == "queued"
    phone = next(p for p in phones if p.accepted)
    sent, delivered = phone.progress("Delivered")
    assert post(person.client, sent).status_code == 200
    assert outbound(runtime).status == "sent"
    assert post(person.client, delivered).status_code == 200
    assert outbound(runtime).status == "delivered"
    assert post(person.client, sent).status_code == 200  # late and repeated
    assert outbound(runtime).status == "delivered"
    with runtime.db.read() as s:
        events = s.scalars(select(MessageStatusEvent.status)).all()
    assert sorted(events) == ["delivered", "sent", "sent"]


def test_a_failed_event_fails_the_message(
    person: AndroidPerson, runtime: Runtime, phones: list[FakeAndroidPhone]
) -> None:
    assert person.send("HELP")
    phone = next(p for p in phones if p.accepted)
    [failed] = phone.progress("Failed")
    assert json.loads(failed.body)["payload"]["reason"] == "RESULT_ERROR_GENERIC_FAILURE"
    assert post(person.client, failed).status_code == 200
    assert outbound(runtime).status == "failed"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.dictionaries(
        st.sampled_from(["messageId", "message", "phoneNumber", "sender", "receivedAt", "x"]),
        st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.integers())),
        max_size=6,
    ),
    event=st.sampled_from(["sms:received", "sms:sent", "sms:failed", "system:ping", "odd"]),
)
def test_random_signed_input_never_crashes(client, phones, payload, event) -> None:  # type: ignore[no-untyped-def]
    response = post(client, phones[0].signed(event, payload))
    assert response.status_code in (200, 400)


def test_numbers_in_national_or_international_form_are_the_same_contact(
    client, runtime: Runtime, phones: list[FakeAndroidPhone]
) -> None:  # type: ignore[no-untyped-def]
    number = new_phone()
    for sender in (number, number.removeprefix("+"), number.removeprefix("+977")):
        assert post(client, phones[0].received("hi", sender)).status_code == 200
    with runtime.db.read() as s:
        assert s.scalars(select(Contact.phone)).all() == [number]


def test_the_fake_posts_to_the_urls_registered_as_the_readme_says(
    phones: list[FakeAndroidPhone],
) -> None:
    received: list[tuple[bytes, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["X-Signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    recorder = LoopbackServer()
    recorder.listen(Recorder)
    recorder.start()
    try:
        phone = phones[0]
        for event in ("sms:sent", "sms:delivered"):
            registered = requests.post(
                phone.url + "/webhooks",
                json={"url": recorder.url + "/webhooks/android/events", "event": event},
                auth=(phone.username, phone.password),
                timeout=5,
            )
            assert registered.status_code == 201
        answer = requests.post(
            phone.url + "/message",
            json={"textMessage": {"text": "hi"}, "phoneNumbers": [new_phone()]},
            auth=(phone.username, phone.password),
            timeout=5,
        )
        assert answer.status_code == 202 and answer.json()["state"] == "Pending"
        phone.progress("Delivered")
        assert phone.post_events() == 2
        assert [json.loads(body)["event"] for body, _ in received] == ["sms:sent", "sms:delivered"]
    finally:
        recorder.stop()
