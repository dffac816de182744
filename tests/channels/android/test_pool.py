"""The pool: turns, pace, a phone dying (mid-broadcast, mid-call) and coming back, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import select

from bot.app import create_app
from bot.broadcasts.service import Draft, confirm, create
from bot.channels.android.api import classify
from bot.channels.android.sender import AndroidChannel
from bot.channels.android.settings import AndroidGateway
from bot.channels.base import ErrorMeaning, PermanentSendError, TransientSendError
from bot.core.messages import Channel, Language, Outbound
from bot.db.models import AndroidHandoff, Contact, Message
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError
from testkit.fake_android import FakeAndroidPhone
from tests.channels.android.conftest import android_channel
from tests.dashboard.support import add_user, signed_in
from tests.support.android import AndroidPerson
from tests.support.builders import new_phone
from tests.support.clock import FakeClock


def outbound(runtime: Runtime) -> list[Message]:
    with runtime.db.read() as s:
        return list(
            s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id))
        )


def live(channel: AndroidChannel) -> dict[str, bool]:
    return {v.name: v.live for v in channel.pool.views()}


def test_the_phones_take_turns(
    client, phones: list[FakeAndroidPhone], channel: AndroidChannel
) -> None:  # type: ignore[no-untyped-def]
    people = [AndroidPerson(client, phones, new_phone()) for _ in range(6)]
    for person in people:
        assert person.send("HELP")
    assert [len(p.accepted) for p in phones] == [2, 2, 2]
    assert [v.sent for v in channel.pool.views()] == [2, 2, 2]


def test_a_phone_that_refuses_connections_is_taken_out_and_put_back(
    client,
    runtime: Runtime,
    phones: list[FakeAndroidPhone],
    channel: AndroidChannel,
    clock: FakeClock,
) -> None:  # type: ignore[no-untyped-def]
    phones[1].die()
    people = [AndroidPerson(client, phones, new_phone()) for _ in range(6)]
    for person in people:
        assert len(person.send("HELP")) == 1  # nothing lost: another phone took it
    assert len(phones[1].accepted) == 0 and len(phones[0].accepted + phones[2].accepted) == 6
    assert live(channel) == {"p1": True, "p2": False, "p3": True}  # after 2 refusals
    summary = client.get("/readyz").get_json()["android_balance"]
    assert summary.startswith("degraded (2 of 3 phones live; p2 out since")
    assert "Connection refused" in summary or "NewConnectionError" in summary
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'bot_android_phone_live{phone="p2"} 0.0' in metrics
    assert 'bot_android_phone_live{phone="p1"} 1.0' in metrics
    # Probed once a minute: still dead, then back.
    clock.advance(61)
    assert people[0].send("HELP again")
    assert live(channel)["p2"] is False
    phones[1].recover()
    clock.advance(61)
    for person in people[:3]:
        assert person.send("menu")
    assert live(channel)["p2"] is True and len(phones[1].accepted) == 1
    assert client.get("/readyz").get_json()["android_balance"] == "ok (3 of 3 phones live)"


def test_with_every_phone_dead_the_message_waits_and_goes_later(
    person: AndroidPerson, runtime: Runtime, phones: list[FakeAndroidPhone], clock: FakeClock
) -> None:
    for phone in phones:
        phone.die()
    assert person.send("HELP") == []
    [message] = outbound(runtime)
    assert (message.status, message.attempts) == ("pending", 1)
    assert "no live phone" in (message.error_message or "") or "tried" in (
        message.error_message or ""
    )
    phones[2].recover()
    clock.advance(120)
    runtime.sweep()
    assert len(person.replies()) == 1
    assert outbound(runtime)[0].status == "queued"


@pytest.fixture
def broadcast_runtime(
    env: dict[str, str], settings_overrides: dict[str, str], clock: FakeClock
) -> Iterator[Runtime]:
    settings = Settings.from_mapping(
        env | settings_overrides | {"BROADCAST_PACE": "sms=0,whatsapp=0,sms:android=0"}
    )
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    channel = android_channel(runtime)
    yield runtime
    channel.close()
    runtime.close()


def broadcast(runtime: Runtime, text: str) -> None:
    draft = Draft(title="Camp", body_en=text, body_ne=text)
    broadcast_id = create(runtime.broadcasts, draft, created_by="coordinator@example.org")
    assert confirm(runtime.broadcasts, broadcast_id) == "sending"


def test_a_phone_dying_mid_broadcast_loses_nothing_and_repeats_nothing(
    broadcast_runtime: Runtime, phones: list[FakeAndroidPhone], clock: FakeClock
) -> None:
    runtime = broadcast_runtime
    client = create_app(runtime.settings, runtime).test_client()
    people = [AndroidPerson(client, phones, new_phone(), via=i % 3) for i in range(12)]
    for person in people:
        assert person.send("HELP")
    text = "आइतबार बिहान १० बजे विद्यालयमा खोप शिविर।"
    phones[1].die_after(2)  # p2 takes two of the broadcast, then stops answering
    broadcast(runtime, text)
    for person in people:
        assert person.replies() == [text]  # each exactly once, whichever phone
    taken = [m for p in phones for m in p.accepted if m.text == text]
    assert len(taken) == 12 and len({m.to for m in taken}) == 12
    assert len([m for m in phones[1].accepted if m.text == text]) == 2
    channel = android_channel(runtime)
    assert live(channel) == {"p1": True, "p2": False, "p3": True}
    assert all(m.status == "queued" for m in outbound(runtime))
    # Back in the pool once it answers its probe.
    phones[1].recover()
    clock.advance(61)
    for person in people[:3]:
        assert person.send("menu")
    assert live(channel)["p2"] is True


def test_a_phone_dying_mid_call_keeps_the_message_until_it_says_it_has_it(
    broadcast_runtime: Runtime, phones: list[FakeAndroidPhone], clock: FakeClock
) -> None:
    runtime = broadcast_runtime
    client = create_app(runtime.settings, runtime).test_client()
    people = [AndroidPerson(client, phones, new_phone()) for _ in range(6)]
    for person in people:
        assert person.send("HELP")
    text = "Vaccination camp on Sunday at 10 at the school."
    phones[1].die_after(1, answer=False)  # takes one, answers nothing, dies
    broadcast(runtime, text)
    [in_doubt] = [m for m in phones[1].accepted if m.text == text]
    waiting = [m for m in outbound(runtime) if m.status == "pending"]
    assert len(waiting) == 1
    why = waiting[0].error_message or ""
    assert "in doubt" in why or why.startswith("maybe sent")
    taken = [m for p in phones for m in p.accepted if m.text == text]
    assert len(taken) == 6  # the one in doubt was not given to another phone
    # Its retry while p2 is still dead waits again; after p2 is back, it is adopted.
    clock.advance(300)
    runtime.sweep()
    assert [m for m in outbound(runtime) if m.status == "pending"]
    phones[1].recover()
    clock.advance(600)
    runtime.sweep()
    assert not [m for m in outbound(runtime) if m.status == "pending"]
    taken = [m for p in phones for m in p.accepted if m.text == text]
    assert len(taken) == 6 and len({m.to for m in taken}) == 6  # nothing sent twice
    adopted = next(m for m in outbound(runtime) if m.provider_sid == f"android:{in_doubt.id}")
    assert adopted.status == "queued"
    with runtime.db.read() as s:
        states = {h.gateway_id: h.state for h in s.scalars(select(AndroidHandoff))}
    assert states[in_doubt.id] == "accepted"
    assert not {"handing", "doubt"} & set(states.values())


def test_an_answer_lost_but_the_phone_alive_is_adopted_at_once(
    person: AndroidPerson, runtime: Runtime, phones: list[FakeAndroidPhone], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # The phone took the message, the answer was lost (no death): the lookup finds it.
    phones[0].die_after(1, answer=False)
    original = phones[0].die
    monkeypatch.setattr(phones[0], "die", lambda: None)
    assert len(person.send("HELP")) == 1
    monkeypatch.setattr(phones[0], "die", original)
    [message] = outbound(runtime)
    assert message.provider_sid == f"android:{phones[0].accepted[0].id}"
    assert sum(len(p.accepted) for p in phones) == 1


def test_wrong_credentials_and_5xx_count_against_the_phone_not_the_message(
    person: AndroidPerson, runtime: Runtime, phones: list[FakeAndroidPhone], channel: AndroidChannel
) -> None:
    phones[0].password = "changed-on-the-phone"
    phones[1].fail_next(500)
    assert len(person.send("HELP")) == 1
    assert len(phones[2].accepted) == 1
    views = {v.name: v for v in channel.pool.views()}
    assert views["p1"].failures == 1 and "401" in (views["p1"].last_error or "")
    assert views["p2"].failures == 1 and views["p3"].failures == 0


def test_a_bad_request_fails_the_message_at_once(
    person: AndroidPerson, runtime: Runtime, phones: list[FakeAndroidPhone], channel: AndroidChannel
) -> None:
    for phone in phones:
        phone.fail_next(400)
    person.send("HELP")
    [message] = outbound(runtime)
    assert (message.status, message.error_code) == ("failed", 400)
    assert all(v.failures == 0 for v in channel.pool.views())


def test_error_meanings() -> None:
    bad_number = classify(400, {"message": "Invalid phone number"})
    assert isinstance(bad_number, PermanentSendError)
    assert bad_number.meaning is ErrorMeaning.BAD_NUMBER
    assert isinstance(classify(400, {"message": "Text message is empty"}), PermanentSendError)
    assert isinstance(classify(401, {"message": "Unauthorized"}), TransientSendError)
    assert isinstance(classify(503, None), TransientSendError)
    assert isinstance(classify(202, None), TransientSendError)  # accepted without an id?
    assert classify(202, {"id": "cb1", "state": "Pending"}) is None


def test_each_phone_keeps_its_pace(
    env: dict[str, str], settings_overrides: dict[str, str], clock: FakeClock, phones
) -> None:  # type: ignore[no-untyped-def]
    # 1 segment a minute: each phone's window holds one 10-segment message per 10 minutes.
    overrides = {"ANDROID_GATEWAY_PACE": "1", "CLAIM_SECONDS": "2"}
    settings = Settings.from_mapping(env | settings_overrides | overrides)
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    channel = android_channel(runtime)
    try:
        client = create_app(settings, runtime).test_client()
        person = AndroidPerson(client, phones, new_phone())
        assert person.send("HELP")  # p1 spends a segment of its ten
        for n in range(3):
            long_text = f"{n} " + "x" * 1500  # 10 segments
            with runtime.db.write() as session:
                contact = session.scalars(select(Contact)).one()
                message_id = runtime.outbox.enqueue(
                    session,
                    contact.id,
                    Outbound(Channel.SMS, contact.phone, long_text, Language.EN, "manual_reply"),
                )
            runtime.retry_task(message_id)
        assert [len(p.accepted) for p in phones] == [1, 1, 1]  # p1 had no room for ten
        [*_, waiting] = outbound(runtime)
        assert waiting.status == "pending" and "pace" in (waiting.error_message or "")
    finally:
        channel.close()
        runtime.close()


def test_the_settings_page_shows_the_pool_and_hides_the_secrets(
    app, runtime: Runtime, channel: AndroidChannel
) -> None:  # type: ignore[no-untyped-def]
    admin = add_user(runtime.db, "admin@example.org", "admin", "x")
    page = signed_in(app, runtime.db, admin).get("/dashboard/settings").get_data(as_text=True)
    assert "<th>android</th><td>ok (3 of 3 phones live)</td>" in page
    assert "<h2>Android gateway phones</h2>" in page
    assert "<td>p2</td><td>in the pool</td>" in page
    assert "phone-password" not in page and "signing-key" not in page


def test_the_phones_panel_shows_a_phone_out_of_the_pool(
    app, client, runtime: Runtime, phones: list[FakeAndroidPhone], channel: AndroidChannel
) -> None:  # type: ignore[no-untyped-def]
    phones[1].die()
    for _ in range(3):
        assert AndroidPerson(client, phones, new_phone()).send("HELP")
    admin = add_user(runtime.db, "admin@example.org", "admin", "x")
    page = signed_in(app, runtime.db, admin).get("/dashboard/settings").get_data(as_text=True)
    assert "<td>p2</td><td>out since 2026-11-01 06:00 UTC</td><td>2</td><td>0</td>" in page
    assert "Connection refused" in page and "<td>p1</td><td>in the pool</td>" in page


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"ANDROID_GATEWAY_MODE": "usb"}, "ANDROID_GATEWAY_MODE"),
        ({"ANDROID_GATEWAY_PHONES": "p1=http://10.0.0.2:8080,sms"}, "ANDROID_GATEWAY_PHONES"),
        ({"ANDROID_GATEWAY_PHONES": "p1=ftp://x,sms,pw"}, "ANDROID_GATEWAY_PHONES"),
        ({"ANDROID_GATEWAY_PHONES": "a b=http://x:1,u,p"}, "ANDROID_GATEWAY_PHONES"),
        (
            {"ANDROID_GATEWAY_PHONES": "p=http://x:1,u,p;p=http://y:1,u,p"},
            "ANDROID_GATEWAY_PHONES",
        ),
        ({"ANDROID_GATEWAY_PHONES": "p=http://x:1,u,p"}, "ANDROID_GATEWAY_SIGNING_KEY"),
        ({"ANDROID_GATEWAY_PHONES": "p=http://x:1,u,p,short"}, "ANDROID_GATEWAY_PHONES"),
        (
            {"ANDROID_GATEWAY_PHONES": "p=http://x:1,u,p,key-12345", "ANDROID_GATEWAY_PACE": "0"},
            "ANDROID_GATEWAY_PACE",
        ),
        (
            {"ANDROID_GATEWAY_MODE": "cloud", "ANDROID_GATEWAY_DEVICES": "a=dev1"},
            "ANDROID_GATEWAY_CLOUD_USER",
        ),
    ],
)
def test_settings_errors_name_the_setting(
    env: dict[str, str], overrides: dict[str, str], name: str
) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping(env | overrides)


def test_settings_a_person_can_type(env: dict[str, str]) -> None:
    settings = Settings.from_mapping(
        env
        | {
            "ANDROID_GATEWAY_PHONES": (
                " Kathmandu-1 = http://192.168.1.20:8080/ , sms , Secr3t ; "
                "pokhara=http://10.0.0.7:8080,sms,Other,own-key-123"
            ),
            "ANDROID_GATEWAY_SIGNING_KEY": "shared-key-1",
        }
    )
    gateway = settings.provider("android", AndroidGateway)
    assert gateway is not None and gateway.mode == "local" and gateway.pace_per_minute == 6
    first, second = gateway.phones
    assert (first.name, first.base_url, first.username) == (
        "kathmandu-1",
        "http://192.168.1.20:8080",
        "sms",
    )
    assert (second.name, second.signing_key) == ("pokhara", "own-key-123")
    assert "Secr3t" not in repr(settings)
    assert Settings.from_mapping(env).provider("android", AndroidGateway) is None


def test_cloud_mode_sends_through_the_account_to_each_device(
    env: dict[str, str], clock: FakeClock
) -> None:
    cloud = FakeAndroidPhone("cloud-user", "cloud-password", "cloud-signing-key").start()
    cloud.devices = {"devA", "devB"}
    settings = Settings.from_mapping(
        env
        | {
            "ANDROID_GATEWAY_MODE": "cloud",
            "ANDROID_GATEWAY_DEVICES": "a=devA;b=devB",
            "ANDROID_GATEWAY_CLOUD_USER": "cloud-user",
            "ANDROID_GATEWAY_CLOUD_PASSWORD": "cloud-password",
            "ANDROID_GATEWAY_CLOUD_URL": cloud.url,
            "ANDROID_GATEWAY_SIGNING_KEY": "cloud-signing-key",
            "ANDROID_GATEWAY_PACE": "6000",
            "ANDROID_GATEWAY_MAX_FAILURES": "2",
        }
    )
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    channel = android_channel(runtime)
    try:
        client = create_app(settings, runtime).test_client()
        person = AndroidPerson(client, [cloud], new_phone())
        assert person.send("HELP") and person.send("HELP")
        assert [m.device for m in cloud.accepted] == ["devA", "devB"]
        assert {path for method, path, _ in cloud.calls if method == "POST"} == {"/messages"}
        cloud.die()  # the cloud server down: both devices fail, the messages wait
        assert person.send("menu") == [] and person.send("menu 2") == []
        assert live(channel) == {"a": False, "b": False}
        cloud.recover()
        clock.advance(61)  # the probe: each device seen just now in GET /devices
        runtime.sweep()
        assert len(person.replies()) == 2 and live(channel) == {"a": True, "b": True}
    finally:
        channel.close()
        runtime.close()
        cloud.stop()


def test_a_handoff_whose_worker_died_is_adopted_but_one_under_way_is_left_alone(
    person: AndroidPerson,
    runtime: Runtime,
    phones: list[FakeAndroidPhone],
    channel: AndroidChannel,
    clock: FakeClock,
) -> None:
    assert person.send("HELP")
    text = "नमस्ते, म सहजकर्ता हुँ।"
    digest = channel.pool.digest(person.number, text)
    # A worker wrote its handoff, the phone took the message, the worker died.
    channel.pool.handing("cb-dead-worker", "p3", digest)
    taken = requests.post(
        phones[2].url + "/message",
        json={
            "id": "cb-dead-worker",
            "textMessage": {"text": text},
            "phoneNumbers": [person.number],
        },
        auth=(phones[2].username, phones[2].password),
        timeout=5,
    )
    assert taken.status_code == 202
    clock.advance(30)
    channel.pool.handing("cb-under-way", "p1", digest)  # another worker's call, now
    assert channel.pool.doubts(digest) == []  # 30 s: it may still be under way
    clock.advance(31)
    assert channel.pool.doubts(digest) == [("cb-dead-worker", "p3")]
    with runtime.db.write() as session:
        contact = session.scalars(select(Contact)).one()
        message_id = runtime.outbox.enqueue(
            session,
            contact.id,
            Outbound(Channel.SMS, contact.phone, text, Language.NE, "manual_reply"),
        )
    runtime.retry_task(message_id)
    assert person.replies() == [text]  # once: adopted from p3, not sent again
    [*_, adopted] = outbound(runtime)
    assert adopted.provider_sid == "android:cb-dead-worker"
