"""Failover end to end against the local fakes: Sparrow starts failing mid-broadcast and
mid-burst, sends move to Twilio SMS, nothing is lost or repeated, the switch is logged,
counted and shown, and once Sparrow answers again sends come back to it."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from dataclasses import replace
from datetime import datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from bot.app import create_app
from bot.broadcasts.audience import Audience
from bot.broadcasts.service import Draft, confirm, create, preview_draft
from bot.channels.base import ChannelAbilities, SendResult, TransientSendError
from bot.channels.sparrow.sender import SparrowChannel
from bot.core.messages import Channel, Language, Outbound
from bot.db.models import Contact, Message, RouteEvent, RouteHealth
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError
from testkit.fake_sparrow import FakeSparrow
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.support import add_user, csrf_token, signed_in
from tests.support.builders import add_contact, new_phone
from tests.support.clock import FakeClock
from tests.support.sockets import Endpoint, refused_url

ENGLISH = "Vaccination camp at the school on Sunday 10am. Bring all children."
# 150 Devanagari characters: UCS-2, 67 per part, so 3 segments (GSM-7 would fit one).
NEPALI = ("आइतबार बिहान विद्यालयमा खोप शिविर। " * 5)[:150]


def sparrow_contacts(runtime: Runtime, n: int, group: str = "ward-1") -> list[str]:
    """`n` contacts who last wrote through Sparrow (their broadcasts go by it first)."""
    phones = [new_phone() for _ in range(n)]
    for number in phones:
        add_contact(runtime.db, number, language="en", groups=(group,))
    with runtime.db.write() as session:
        session.execute(
            update(Contact).where(Contact.phone.in_(phones)).values(last_provider="sparrow")
        )
    return phones


def received(sparrow: FakeSparrow, twilio: FakeTwilio) -> tuple[Counter[str], Counter[str]]:
    """How many messages each number got from each fake (E.164)."""
    by_sparrow = Counter("+977" + c.form["to"] for c in sparrow.sent)
    by_twilio = Counter(c.form["To"] for c in twilio.sent)
    return by_sparrow, by_twilio


def fail_from_now(sparrow: FakeSparrow) -> None:
    sparrow.fail_next(503, times=10**6)  # every call answers 503 until recovered


def recover(sparrow: FakeSparrow) -> None:
    with sparrow._lock:
        sparrow._failures.clear()


def settle(runtime: Runtime, clock: FakeClock, rounds: int = 4) -> None:
    """Lets retries come due and the sweeper hand them out (the queue runs inline)."""
    for _ in range(rounds):
        clock.advance(130)
        runtime.sweep()


def channels_panel_text(client: FlaskClient) -> str:
    """The overview's Channels panel as text, whitespace collapsed."""
    page = client.get("/dashboard/").get_data(as_text=True)
    panel = page[page.index('<section id="channels"') :]
    panel = panel[: panel.index("</section>")]
    text = re.sub(r"<[^>]+>", " ", panel)
    return re.sub(r"\s+", " ", text)


def events(runtime: Runtime) -> list[tuple[str, str, str | None, int]]:
    with runtime.db.read() as session:
        rows = session.scalars(select(RouteEvent).order_by(RouteEvent.id)).all()
        return [(e.kind, e.route, e.to_route, e.count) for e in rows]


def test_sparrow_failing_mid_broadcast_loses_and_repeats_nothing_and_comes_back(
    runtime: Runtime,
    sparrow: FakeSparrow,
    twilio: FakeTwilio,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    phones = sparrow_contacts(runtime, 40)
    ports = runtime.broadcasts
    calls = []

    def send_and_break(message_id: int) -> bool:
        calls.append(message_id)
        if len(calls) == 15:
            fail_from_now(sparrow)  # Sparrow goes down in the middle of the broadcast
        return ports.send(message_id)

    runtime.broadcasts = replace(ports, send=send_and_break)
    draft = Draft(title="Camp", body_en=ENGLISH, body_ne=NEPALI, audience=Audience(("ward-1",)))
    with caplog.at_level(logging.WARNING, logger="bot.failover"):
        confirm(runtime.broadcasts, create(runtime.broadcasts, draft, "c@example.org"))
        settle(runtime, clock)
    by_sparrow, by_twilio = received(sparrow, twilio)
    # Zero lost, zero repeated: every contact got the broadcast exactly once, one way or other.
    assert by_sparrow + by_twilio == Counter({p: 1 for p in phones})
    assert sum(by_sparrow.values()) == 14 and sum(by_twilio.values()) == 26
    with runtime.db.read() as session:
        rows = session.execute(select(Message.provider, Message.status, Message.channel)).all()
        health = session.get(RouteHealth, "sms:sparrow")
    assert Counter((r.provider, r.status) for r in rows) == {
        ("sparrow", "sent"): 14,
        (None, "queued"): 26,  # the row says how it went: Twilio SMS (the default route)
    }
    assert health is not None and not health.up
    assert [e[:3] for e in events(runtime)] == [
        ("down", "sms:sparrow", None),
        ("switch", "sms:sparrow", "sms"),
    ]
    assert events(runtime)[1][3] == 26
    assert "route sms:sparrow is down after 3 consecutive failures" in caplog.text
    assert "route sms:sparrow is down: sending by sms instead" in caplog.text

    app = create_app(runtime.settings, runtime)
    client = app.test_client()
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'bot_route_up{route="sms:sparrow"} 0.0' in metrics
    assert 'bot_route_up{route="sms"} 1.0' in metrics
    assert 'bot_channel_failovers_total{from="sms:sparrow",to="sms"}' in metrics
    ready = client.get("/readyz")
    assert ready.status_code == 200  # degraded, not failing: Twilio SMS carries the load
    assert ready.get_json()["channels"].startswith("degraded: sms:sparrow down")
    admin = signed_in(app, runtime.db, add_user(runtime.db, "a@example.org", "admin", "x"))
    panel = channels_panel_text(admin)
    assert re.search(r"sms:sparrow down 2026-11-01 \d\d:\d\d \d+ 2026-", panel)  # + probe
    assert re.search(r" sms up ", panel)
    assert "26 messages from sms:sparrow sent by sms" in panel
    assert "sms:sparrow went down (Sparrow HTTP 503" in panel

    # Sparrow answers again; after FAILOVER_PROBE_SECONDS one send probes it and the rest
    # of the next broadcast goes by Sparrow again.
    recover(sparrow)
    clock.advance(61)
    runtime.broadcasts = ports
    later = replace(draft, title="Camp again", body_en="Second camp on Monday.")
    with caplog.at_level(logging.WARNING, logger="bot.failover"):
        confirm(ports, create(ports, later, "c@example.org"))
    by_sparrow_after, by_twilio_after = received(sparrow, twilio)
    assert by_twilio_after == by_twilio  # nothing more by Twilio
    assert by_sparrow_after - by_sparrow == Counter({p: 1 for p in phones})
    assert [e[0] for e in events(runtime)] == ["down", "switch", "up"]
    assert "route sms:sparrow is back up" in caplog.text
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'bot_route_up{route="sms:sparrow"} 1.0' in metrics
    assert 'bot_route_state_changes_total{route="sms:sparrow",state="up"}' in metrics
    assert client.get("/readyz").get_json()["channels"] == "ok"
    panel = channels_panel_text(admin)
    assert re.search(r"sms:sparrow up 2026-11-01 \d\d:\d\d 0 ", panel)
    assert re.search(r"sms:sparrow came back up \(down for \d+ s\)", panel)


# The twilio library's async client still passes aiohttp a BasicAuth (its deprecation).
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")
@pytest.mark.parametrize("on_the_loop", [False, True], ids=["inline", "worker_loop"])
def test_replies_move_to_the_next_route_mid_burst_and_come_back(
    runtime: Runtime, sparrow: FakeSparrow, twilio: FakeTwilio, clock: FakeClock, on_the_loop: bool
) -> None:
    phones = sparrow_contacts(runtime, 30)
    with runtime.db.read() as session:
        ids = {row.phone: row.id for row in session.execute(select(Contact.phone, Contact.id))}
    loop = asyncio.new_event_loop()

    def send(message_id: int) -> None:
        if not on_the_loop:
            runtime.retry_task(message_id)  # claim, load, send: inline
            return
        # As the worker's sender does: provider calls on its event loop (`send_async`).
        assert runtime.outbox.claim(message_id)
        job = runtime.outbox.load(message_id)
        assert job is not None
        loop.run_until_complete(runtime.outbox.send_async(job))

    def burst(numbers: list[str], text: str) -> None:
        for n, number in enumerate(numbers):
            if n == 10 and text == "during":
                fail_from_now(sparrow)
            with runtime.db.write() as session:
                message_id = runtime.outbox.enqueue(
                    session,
                    ids[number],
                    Outbound(Channel.SMS, number, f"{text} {n}", Language.EN, "manual_reply"),
                )
            send(message_id)

    try:
        burst(phones, "during")
        settle(runtime, clock)
        by_sparrow, by_twilio = received(sparrow, twilio)
        assert by_sparrow + by_twilio == Counter({p: 1 for p in phones})
        assert sum(by_sparrow.values()) == 10
        recover(sparrow)
        clock.advance(61)
        burst(phones, "after")
        settle(runtime, clock)
        by_sparrow_after, by_twilio_after = received(sparrow, twilio)
        assert by_twilio_after == by_twilio
        assert by_sparrow_after - by_sparrow == Counter({p: 1 for p in phones})
    finally:
        adapters = {*runtime.outbox.channels.values(), *runtime.outbox.routes.values()}
        for adapter in adapters:
            loop.run_until_complete(adapter.aclose())
        loop.close()


def test_preview_prices_each_route_and_nepali_as_ucs2(runtime: Runtime, clock: FakeClock) -> None:
    db = runtime.db
    [_english, nepali] = sparrow_contacts(runtime, 2, group="ward-9")
    with db.write() as session:
        session.execute(update(Contact).where(Contact.phone == nepali).values(language="ne"))
    add_contact(db, new_phone(), language="en", groups=("ward-9",))  # Twilio SMS, +977
    add_contact(db, "+15005550009", language="en", groups=("ward-9",))  # Twilio SMS, not +977
    add_contact(db, channel="whatsapp", groups=("ward-9",), last_inbound_at=clock.now)
    draft = Draft(title="Camp", body_en=ENGLISH, body_ne=NEPALI, audience=Audience(("ward-9",)))
    result = preview_draft(runtime.broadcasts, draft)
    assert result.segments[("sms:sparrow", "ne")] == 3  # 150 UCS-2 characters: 67 per part
    assert result.recipients == {
        ("sms:sparrow", "en"): 1,
        ("sms:sparrow", "ne"): 1,
        ("sms", "en"): 2,
        ("whatsapp", "en"): 1,
    }
    sparrow_share = result.routes["sms:sparrow"]
    assert (sparrow_share.recipients, sparrow_share.segments) == (2, 4)
    assert sparrow_share.cost == pytest.approx(4 * 0.5)
    assert result.routes["sms"].cost == pytest.approx(0.02 + 0.0079)  # +977 and the rest
    assert result.routes["whatsapp"].cost == pytest.approx(0.005)
    assert result.cost == pytest.approx(2.0 + 0.0279 + 0.005)
    lines = "\n".join(result.lines())
    assert "sms:sparrow: 2 recipients, 4 segments, 2.00 USD" in lines
    # While Sparrow is down the preview shows where its contacts go instead, and says so.
    for _ in range(3):
        runtime.failover.failed(runtime.routes.order[1], "Sparrow HTTP 503")
    down = preview_draft(runtime.broadcasts, draft)
    assert "sms:sparrow" not in down.routes and down.routes["sms"].recipients == 4
    assert down.down == ("sms:sparrow",)
    assert "Down now" in "\n".join(down.lines())
    # The dashboard's preview shows the same, per route.
    app = create_app(runtime.settings, runtime)
    admin = signed_in(app, db, add_user(db, "a@example.org", "admin", "x"))
    form = {
        "csrf_token": csrf_token(admin, "/dashboard/broadcasts/new"), "title": "Camp",
        "body_en": ENGLISH, "body_ne": NEPALI, "groups": "ward-9", "schedule": "now",
        "survey_key": "",
    }  # fmt: skip
    page = admin.post("/dashboard/broadcasts/preview", data=form).get_data(as_text=True)
    assert re.search(r"<td>sms</td><td class=\"num\">4</td>", page)
    assert "Down now: sms:sparrow." in page


class TimingOut:
    """A provider whose calls all time out after the request went out: it may have them."""

    def __init__(self, can_be_asked: bool) -> None:
        self.abilities = ChannelAbilities(find_sent=can_be_asked)
        self.calls = 0
        self.asked = 0

    def send(self, message: Outbound) -> SendResult:
        self.calls += 1
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as exc:  # the adapter knows the request went out
            raise TransientSendError("Sparrow unreachable: timeout", maybe_sent=True) from exc

    async def send_async(self, message: Outbound) -> SendResult:
        return self.send(message)

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        self.asked += 1
        return []  # asked, it says it never got them

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("can_be_asked", [False, True])
def test_a_message_that_may_have_reached_the_provider_is_not_moved_unless_it_says_not(
    runtime: Runtime, twilio: FakeTwilio, clock: FakeClock, can_be_asked: bool
) -> None:
    provider = TimingOut(can_be_asked)
    runtime.outbox.routes["sparrow"] = provider
    phones = sparrow_contacts(runtime, 5)
    with runtime.db.read() as session:
        ids = {row.phone: row.id for row in session.execute(select(Contact.phone, Contact.id))}
    for number in phones:
        with runtime.db.write() as session:
            message_id = runtime.outbox.enqueue(
                session,
                ids[number],
                Outbound(Channel.SMS, number, "hello", Language.EN, "manual_reply"),
            )
        runtime.retry_task(message_id)
    for _ in range(2):  # retries come due; Sparrow's probe (60 s) does not
        clock.advance(20)
        runtime.sweep()
    moved = Counter(c.form["To"] for c in twilio.sent)
    # The first three timed out (the third took the route down); the last two never went
    # to Sparrow and moved at once.
    assert provider.calls == 3
    if can_be_asked:  # Sparrow said it lacks the three: they moved too, each once
        assert moved == Counter({p: 1 for p in phones})
        assert provider.asked >= 3
    else:  # they wait for Sparrow to come back rather than risk a second copy
        assert moved == Counter({p: 1 for p in phones[3:]})
        with runtime.db.read() as session:
            waiting = session.scalars(
                select(Message.provider).where(Message.status == "pending")
            ).all()
        assert waiting == ["sparrow"] * 3


@pytest.mark.parametrize("failure", ["refused", "silent"])
def test_the_sparrow_adapter_says_which_sends_may_move(
    runtime: Runtime, twilio: FakeTwilio, sparrow: FakeSparrow, clock: FakeClock, failure: str
) -> None:
    # The real adapter, its calls failing in transport: a connection refused never reached
    # Sparrow, so those sends move to Twilio SMS at once; a request Sparrow never answered
    # may have been queued there, and Sparrow cannot be asked: those wait for it.
    adapter = runtime.outbox.routes["sparrow"]
    assert isinstance(adapter, SparrowChannel)
    endpoint = Endpoint("silent") if failure == "silent" else None
    adapter.base = endpoint.url if endpoint else refused_url()
    adapter.timeout = 1
    phones = sparrow_contacts(runtime, 5)
    with runtime.db.read() as session:
        ids = {row.phone: row.id for row in session.execute(select(Contact.phone, Contact.id))}
    try:
        for number in phones:
            with runtime.db.write() as session:
                message_id = runtime.outbox.enqueue(
                    session, ids[number], Outbound(Channel.SMS, number, "hi", Language.EN, "r")
                )
            runtime.retry_task(message_id)
        for _ in range(2):  # retries come due; Sparrow's probe (60 s) does not
            clock.advance(20)
            runtime.sweep()
    finally:
        if endpoint:
            endpoint.close()
    moved = Counter(c.form["To"] for c in twilio.sent)
    assert sparrow.sent == []
    if failure == "refused":  # every one moved, once
        assert moved == Counter({p: 1 for p in phones})
    else:  # three went out unanswered (the third took the route down): they wait
        assert endpoint is not None and len(endpoint.requests) == 3
        assert moved == Counter({p: 1 for p in phones[3:]})
        with runtime.db.read() as session:
            waiting = session.scalars(
                select(Message.provider).where(Message.status == "pending")
            ).all()
        assert waiting == ["sparrow"] * 3


def test_readyz_fails_only_when_every_route_is_down(runtime: Runtime) -> None:
    client = create_app(runtime.settings, runtime).test_client()
    for route in runtime.routes.order[:2]:  # whatsapp, sms:sparrow
        for _ in range(3):
            runtime.failover.failed(route, "unreachable")
    degraded = client.get("/readyz")
    assert degraded.status_code == 200
    assert degraded.get_json()["channels"] == (
        "degraded: sms:sparrow, whatsapp down (sending by sms)"
    )
    for _ in range(3):
        runtime.failover.failed(runtime.routes.order[2], "unreachable")
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.get_json()["channels"] == "down: sms, sms:sparrow, whatsapp"


def test_a_channel_order_naming_a_provider_not_installed_stops_start_up(
    env: dict[str, str], clock: FakeClock
) -> None:
    settings = Settings.from_mapping(env | {"CHANNEL_ORDER": "whatsapp,sms:sparow,sms"})
    with pytest.raises(SettingsError, match="CHANNEL_ORDER names sms:sparow, but no provider"):
        Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)


class Busy(TimingOut):
    """A provider that answers "busy" (an Android pool with every phone at its pace)."""

    def send(self, message: Outbound) -> SendResult:
        self.calls += 1
        error = TransientSendError("every live phone of the Android gateway is at its pace")
        error.provider_down = False
        raise error


def test_a_busy_provider_is_not_taken_for_a_down_one(
    runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    busy = Busy(can_be_asked=False)
    runtime.outbox.routes["sparrow"] = busy
    phones = sparrow_contacts(runtime, 5)
    with runtime.db.read() as session:
        ids = {row.phone: row.id for row in session.execute(select(Contact.phone, Contact.id))}
    for number in phones:
        with runtime.db.write() as session:
            message_id = runtime.outbox.enqueue(
                session, ids[number], Outbound(Channel.SMS, number, "hi", Language.EN, "reply")
            )
        runtime.retry_task(message_id)
    assert busy.calls == 5 and twilio.sent == []  # all wait for Sparrow's pace
    assert runtime.failover.down() == frozenset()


def test_whatsapp_unreachable_moves_replies_to_local_sms_and_back(
    runtime: Runtime, sparrow: FakeSparrow, twilio: FakeTwilio, clock: FakeClock
) -> None:
    """WhatsApp blocked (as in Nepal in September 2025): Twilio's WhatsApp calls fail, the
    contacts also have SMS, their replies go by Sparrow until WhatsApp answers again."""
    phones = [new_phone() for _ in range(12)]
    ids = {
        number: add_contact(
            runtime.db,
            number,
            channel="whatsapp",
            has_sms=True,
            has_whatsapp=True,
            last_inbound_at=clock.now,
        )
        for number in phones
    }

    def burst(text: str, fail_at: int | None = None) -> None:
        for n, number in enumerate(phones):
            if n == fail_at:
                twilio.fail_next(503, times=10**6)
            with runtime.db.write() as session:
                message_id = runtime.outbox.enqueue(
                    session,
                    ids[number],
                    Outbound(Channel.WHATSAPP, number, f"{text} {n}", Language.EN, "manual_reply"),
                )
            runtime.retry_task(message_id)

    burst("during", fail_at=4)
    settle(runtime, clock)
    by_whatsapp = Counter(c.form["To"].removeprefix("whatsapp:") for c in twilio.sent)
    by_sparrow = Counter("+977" + c.form["to"] for c in sparrow.sent)
    assert by_whatsapp + by_sparrow == Counter({p: 1 for p in phones})
    assert sum(by_whatsapp.values()) == 4
    assert runtime.failover.down() == {runtime.routes.order[0]}  # whatsapp
    with twilio._lock:
        twilio._failures.clear()
    clock.advance(61)
    burst("after")
    settle(runtime, clock)
    after = Counter(c.form["To"].removeprefix("whatsapp:") for c in twilio.sent) - by_whatsapp
    assert after == Counter({p: 1 for p in phones})
    assert Counter("+977" + c.form["to"] for c in sparrow.sent) == by_sparrow


def test_whatsapp_failing_after_it_accepted_moves_the_next_replies_by_its_reports(
    runtime: Runtime, sparrow: FakeSparrow, twilio: FakeTwilio, clock: FakeClock
) -> None:
    """WhatsApp blocked, Twilio still answering 201: each send looks fine, then Twilio reports
    it failed with 63012 (the platform unreachable). Those signed reports take the route
    down after FAILOVER_AFTER, so the next replies go by Sparrow; a late "delivered" of an
    older message does not bring the route back, its probe does. A report about one bad
    number says nothing about the route."""
    from tests.support.phone import post_signed

    client = create_app(runtime.settings, runtime).test_client()
    phones = [new_phone() for _ in range(6)]
    ids = {
        number: add_contact(
            runtime.db, number, channel="whatsapp", has_sms=True, has_whatsapp=True,
            last_inbound_at=clock.now,
        )
        for number in phones
    }  # fmt: skip

    def reply(number: str, text: str) -> None:
        with runtime.db.write() as session:
            message_id = runtime.outbox.enqueue(
                session,
                ids[number],
                Outbound(Channel.WHATSAPP, number, text, Language.EN, "manual_reply"),
            )
        runtime.retry_task(message_id)

    def report(sid: str, status: str, code: str | None = None) -> None:
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "a" * 32}
        if code:
            form["ErrorCode"] = code
        assert post_signed(client, "/webhooks/twilio/status", form).status_code == 200

    for number in phones[:4]:
        reply(number, "first")
    assert len(twilio.sent) == 4 and not sparrow.sent  # all accepted by Twilio
    report(twilio.sent[0].sid, "delivered")  # before the block
    report(twilio.sent[1].sid, "undelivered", "63024")  # one bad number: not the route
    whatsapp = runtime.routes.order[0]
    assert runtime.failover.down() == frozenset()
    for sent in twilio.sent[1:4]:
        report(sent.sid, "failed", "63012")
    assert runtime.failover.down() == {whatsapp}
    report(twilio.sent[0].sid, "read")  # late news of an older message
    assert runtime.failover.down() == {whatsapp}
    for number in phones[4:]:
        reply(number, "second")
    settle(runtime, clock, rounds=1)
    assert len(twilio.sent) == 4  # nothing more to WhatsApp while it is down
    assert sorted("+977" + c.form["to"] for c in sparrow.sent) == sorted(phones[4:])


def test_an_unreachable_platform_answered_at_send_time_counts_against_the_route(
    runtime: Runtime, sparrow: FakeSparrow, twilio: FakeTwilio, clock: FakeClock
) -> None:
    """Twilio refusing a WhatsApp send with 63012 (HTTP 400) is the platform down, not this
    message's fault: retried, and the route goes down after FAILOVER_AFTER of them."""
    number = new_phone()
    contact = add_contact(
        runtime.db, number, channel="whatsapp", has_sms=True, has_whatsapp=True,
        last_inbound_at=clock.now,
    )  # fmt: skip
    twilio.fail_next(400, 63012, times=3)
    for n in range(3):
        with runtime.db.write() as session:
            message_id = runtime.outbox.enqueue(
                session, contact, Outbound(Channel.WHATSAPP, number, f"m{n}", Language.EN)
            )
        runtime.retry_task(message_id)
    assert runtime.failover.down() == {runtime.routes.order[0]}
    assert [c.form["text"] for c in sparrow.sent] == ["m2"]  # moved at once
    settle(runtime, clock)  # the others' retries, after the probe found WhatsApp back
    texts = [c.form["text"] for c in sparrow.sent] + [c.form["Body"] for c in twilio.sent]
    assert Counter(texts) == Counter({"m0": 1, "m1": 1, "m2": 1})  # each once
