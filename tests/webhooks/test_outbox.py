"""Delivery: retries on 429/5xx, permanent errors, status callbacks in any order."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from sqlalchemy import select

from bot.db.models import ConsentEvent, Contact, Message, MessageStatusEvent
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import twilio_form
from tests.support.clock import FakeClock
from tests.support.phone import MESSAGES_PATH, Phone, post_signed

STATUS_PATH = "/webhooks/twilio/status"


def outbound(runtime: Runtime) -> Message:
    with runtime.db.read() as s:
        return s.scalars(
            select(Message).where(Message.direction == "out").order_by(Message.id.desc())
        ).first()  # type: ignore[return-value]


def status(client, sid: str, value: str, code: str | None = None):  # type: ignore[no-untyped-def]
    form = {"MessageSid": sid, "MessageStatus": value, "AccountSid": "AC" + "a" * 32}
    if code:
        form["ErrorCode"] = code
    return post_signed(client, STATUS_PATH, form)


def test_429_and_500_are_retried_with_backoff(
    phone: Phone, runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    twilio.fail_next(429, 20429)
    twilio.fail_next(500)
    assert phone.send("help") == []
    first = outbound(runtime)
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.next_attempt_at is not None
    # Not yet due: a sweep now sends nothing.
    runtime.sweep()
    assert twilio.sent == []
    clock.advance(3)
    runtime.sweep()
    second = outbound(runtime)
    assert (second.status, second.attempts) == ("pending", 2)
    assert second.next_attempt_at > first.next_attempt_at  # backoff grows
    clock.advance(10)
    runtime.sweep()
    done = outbound(runtime)
    assert (done.status, done.attempts) == ("queued", 3)
    assert len(twilio.calls) == 3 and len(twilio.sent) == 1
    assert done.provider_sid == twilio.sent[0].sid


def test_retries_stop_at_the_cap(
    phone: Phone, runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    cap = runtime.outbox.policy.max_attempts
    twilio.fail_next(503, times=cap + 2)
    phone.send("help")
    for _ in range(cap + 2):
        clock.advance(400)
        runtime.sweep()
    message = outbound(runtime)
    assert (message.status, message.attempts) == ("failed", cap)
    assert len(twilio.calls) == cap


def test_permanent_errors_are_not_retried(
    phone: Phone, runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    twilio.fail_next(400, 21211)  # invalid 'To' number
    phone.send("help")
    clock.advance(1000)
    runtime.sweep()
    message = outbound(runtime)
    assert (message.status, message.error_code) == ("failed", 21211)
    assert len(twilio.calls) == 1


def test_error_21610_on_send_opts_the_contact_out(
    phone: Phone, runtime: Runtime, twilio: FakeTwilio
) -> None:
    twilio.fail_next(400, 21610)
    phone.send("help")
    with runtime.db.read() as s:
        contact = s.scalars(select(Contact)).one()
        [event] = s.scalars(select(ConsentEvent)).all()
    assert contact.opted_out
    assert (event.opted_out, event.reason) == (True, "twilio_21610")
    assert phone.send("hello") == []


def test_status_callbacks_never_move_backwards(
    client, phone: Phone, runtime: Runtime, twilio: FakeTwilio
) -> None:  # type: ignore[no-untyped-def]
    phone.send("help")
    sid = twilio.sent[0].sid
    assert sid is not None
    for value in ["delivered", "sent", "queued", "sending", "failed"]:
        assert status(client, sid, value).status_code == 200
    assert outbound(runtime).status == "delivered"
    assert status(client, sid, "read").status_code == 200
    assert outbound(runtime).status == "read"
    with runtime.db.read() as s:
        events = s.scalars(select(MessageStatusEvent).order_by(MessageStatusEvent.id)).all()
    assert [(e.status, e.applied) for e in events] == [
        ("delivered", True),
        ("sent", False),
        ("queued", False),
        ("sending", False),
        ("failed", False),
        ("read", True),
    ]


def test_status_for_unknown_sid_is_kept_and_applied_when_the_sid_appears(
    client,
    runtime: Runtime,
    twilio: FakeTwilio,  # type: ignore[no-untyped-def]
) -> None:
    assert status(client, "SM" + "0" * 32, "delivered").status_code == 200
    with runtime.db.read() as s:
        [orphan] = s.scalars(select(MessageStatusEvent)).all()
    assert orphan.message_id is None


def test_status_callback_racing_the_send_is_applied(
    client,
    phone: Phone,
    runtime: Runtime,
    twilio: FakeTwilio,  # type: ignore[no-untyped-def]
) -> None:
    # The callback arrives before the worker records the SID Twilio gave it.
    original = runtime.outbox._record_sent

    def late_record(message_id: int, attempts: int, sid: str, value: str) -> None:
        assert status(client, sid, "delivered").status_code == 200
        original(message_id, attempts, sid, value)

    runtime.outbox._record_sent = late_record  # type: ignore[method-assign]
    phone.send("help")
    assert outbound(runtime).status == "delivered"


def test_status_21610_opts_out(client, phone: Phone, runtime: Runtime, twilio: FakeTwilio) -> None:  # type: ignore[no-untyped-def]
    phone.send("help")
    sid = twilio.sent[0].sid
    assert status(client, sid, "undelivered", "21610").status_code == 200
    with runtime.db.read() as s:
        assert s.scalars(select(Contact.opted_out)).one() is True


def test_status_callbacks_are_signed_and_validated(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    form = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    assert client.post(STATUS_PATH, data=form).status_code == 403
    assert post_signed(client, STATUS_PATH, {"MessageStatus": "delivered"}).status_code == 400
    assert post_signed(client, STATUS_PATH, dict(form, ErrorCode="abc")).status_code == 400


def test_opt_out_at_send_time_skips_queued_messages(
    phone: Phone, runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    twilio.fail_next(500)
    phone.send("help")  # reply waits for a retry
    phone.send("STOP")  # the confirmation goes out; the waiting menu must not
    clock.advance(60)
    runtime.sweep()
    bodies = [c.form["Body"] for c in twilio.sent]
    assert len(bodies) == 1 and "START" in bodies[0]
    with runtime.db.read() as s:
        statuses = s.scalars(
            select(Message.status).where(Message.direction == "out").order_by(Message.id)
        ).all()
    assert statuses == ["skipped", "queued"]


def test_worker_crash_mid_job_is_recovered_once(
    settings,
    client,
    twilio: FakeTwilio,
    clock: FakeClock,
    runtime: Runtime,  # type: ignore[no-untyped-def]
) -> None:
    """The task was taken off the queue, then the worker died before committing anything."""

    class Crash(BaseException):
        pass

    real_handle = runtime.bot.handle

    def dying_handle(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Crash

    runtime.bot.handle = dying_handle  # type: ignore[method-assign]
    form = twilio_form("help")
    with contextlib.suppress(Crash):
        post_signed(client, MESSAGES_PATH, form)
    runtime.bot.handle = real_handle  # type: ignore[method-assign]
    assert twilio.sent == []
    # "Restart": a fresh runtime sweeps; the message is handled exactly once.
    from bot.queue import make_huey

    restarted = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    clock.advance(31)
    assert restarted.sweep().contacts == 1
    restarted.sweep()
    clock.advance(31)
    restarted.sweep()
    assert len(twilio.sent) == 1
    restarted.close()


def _die_after_the_provider_accepts(runtime: Runtime) -> None:
    """The worker's send reaches Twilio, then the process dies before recording the SID."""

    class Died(BaseException):
        pass

    def record_nothing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Died

    runtime.outbox._record_sent = record_nothing  # type: ignore[method-assign]
    return Died  # type: ignore[return-value]


def test_a_send_that_reached_twilio_before_the_worker_died_is_not_sent_again(
    settings,
    client,
    twilio: FakeTwilio,
    clock: FakeClock,
    runtime: Runtime,  # type: ignore[no-untyped-def]
) -> None:
    died = _die_after_the_provider_accepts(runtime)
    with contextlib.suppress(died):  # type: ignore[arg-type]
        post_signed(client, MESSAGES_PATH, twilio_form("help"))
    assert len(twilio.sent) == 1 and outbound(runtime).status == "dispatching"
    from bot.queue import make_huey

    restarted = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    clock.advance(settings.claim_seconds + 1)
    assert restarted.sweep().reclaimed == 1  # the claim ran out: the sweeper takes it back
    row = outbound(restarted)
    assert len(twilio.sent) == 1 and twilio.list_calls == 1  # asked, did not send again
    assert row.status == "queued" and row.provider_sid == twilio.sent[0].sid
    restarted.close()


def test_a_send_that_never_reached_twilio_is_sent_after_recovery(
    settings,
    client,
    twilio: FakeTwilio,
    clock: FakeClock,
    runtime: Runtime,  # type: ignore[no-untyped-def]
) -> None:
    class Died(BaseException):
        pass

    def die_before_sending(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Died

    runtime.outbox.send = die_before_sending  # type: ignore[method-assign]
    with contextlib.suppress(Died):
        post_signed(client, MESSAGES_PATH, twilio_form("help"))
    assert twilio.sent == []
    from bot.queue import make_huey

    restarted = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    clock.advance(settings.claim_seconds + 1)
    restarted.sweep()
    assert len(twilio.sent) == 1 and twilio.list_calls == 1
    assert outbound(restarted).provider_sid == twilio.sent[0].sid
    restarted.close()


def test_a_worker_replacing_a_dead_one_takes_back_its_claims_at_once(
    phone: Phone, runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    """`bot worker --after-crash`: the dead worker's claimed send is taken back now, not when
    its claim runs out, and adopted from Twilio rather than sent twice."""
    phone.send("help")
    sent = outbound(runtime)
    with runtime.db.write() as s:  # the worker died after Twilio took it, before recording it
        row = s.get(Message, sent.id)
        assert row is not None
        row.status, row.provider_sid = "dispatching", None
        claimed_at = clock.now - timedelta(seconds=1)  # just before it died
        row.claimed_until = claimed_at + timedelta(seconds=runtime.settings.claim_seconds)
    assert runtime.sweep().reclaimed == 0  # a live worker's claim, as far as a sweep knows
    assert runtime.sweep(orphaned=True).reclaimed == 1
    adopted = outbound(runtime)
    assert len(twilio.sent) == 1 and adopted.provider_sid == twilio.sent[0].sid


def test_a_named_worker_replacing_a_dead_one_takes_back_only_that_ones_claims(
    settings, phone: Phone, runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    """`bot run` with several workers names them (`bot worker --name`): the answers a worker
    claims carry its name, and its successor after a crash takes back at once the sends
    claimed under that name, while another live worker's claims stay its own."""
    from bot.queue import make_huey

    runtime.inbox.owner = "host:7/worker-1"  # the turn's answer is claimed under its name
    runtime.outbox.send = lambda job: None  # type: ignore[method-assign]  # dies mid-send
    phone.send("help")
    mine = outbound(runtime)
    assert (mine.status, mine.claimed_by) == ("dispatching", "host:7/worker-1")
    runtime.inbox.owner = "host:7/worker-2"
    phone.send("hello")
    theirs = outbound(runtime)
    assert (theirs.status, theirs.claimed_by) == ("dispatching", "host:7/worker-2")
    assert twilio.sent == []

    restarted = Runtime(
        settings, huey=make_huey(settings, immediate=True), clock=clock, owner="host:7/worker-1"
    )
    assert restarted.sweep(orphaned=True).reclaimed == 1
    with restarted.db.read() as s:
        statuses = dict(s.execute(select(Message.id, Message.status).where(Message.id.in_(
            [mine.id, theirs.id]))).all())  # fmt: skip
    assert statuses[theirs.id] == "dispatching"  # the live worker-2 still holds it
    assert statuses[mine.id] == "queued" and [m.form["Body"] for m in twilio.sent] == [mine.body]
    # Its claims run out only if worker-2 dies unseen: then any sweep takes them back.
    clock.advance(settings.claim_seconds + 1)
    assert restarted.sweep().reclaimed == 1
    assert len(twilio.sent) == 2
    restarted.close()


def test_a_pending_send_is_claimed_under_the_workers_name(
    settings, runtime: Runtime, clock: FakeClock
) -> None:
    from bot.queue import make_huey

    named = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock, owner="w-3")
    with named.db.write() as s:
        contact = Contact(phone="+9779800000077", channel="sms")
        s.add(contact)
        s.flush()
        row = Message(contact_id=contact.id, direction="out", channel="sms", body="hi",
                      status="pending", language="en", kind="reply")  # fmt: skip
        s.add(row)
        s.flush()
        message_id = row.id
    assert named.outbox.claim(message_id)
    with named.db.read() as s:
        claimed = s.get(Message, message_id)
        assert claimed is not None and (claimed.status, claimed.claimed_by) == (
            "dispatching",
            "w-3",
        )
    named.close()
