"""Broadcasts: preview, fan-out, sending, opt-out at send time, cancel, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.broadcasts import fanout
from bot.broadcasts.audience import Audience, AudienceError
from bot.broadcasts.fanout import plan_run
from bot.broadcasts.sending import in_quiet_hours, send_slice
from bot.broadcasts.service import (
    BroadcastError,
    Draft,
    cancel,
    confirm,
    create,
    funnel,
    occurrence,
    parse_every,
    preview_draft,
    preview_of,
    start_run,
)
from bot.db.models import Broadcast, BroadcastRun, Message
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import add_contact
from tests.support.clock import FakeClock
from tests.support.phone import Phone

NEPALI = "आइतबार बिहान १० बजे विद्यालयमा खोप शिविर। सबै बालबालिकालाई ल्याउनुहोस्।"
ENGLISH = "Vaccination camp at the school on Sunday 10am. Bring all children."


def draft(**kw: object) -> Draft:
    values: dict[str, object] = {"title": "Vaccination camp", "body_en": ENGLISH, "body_ne": NEPALI}
    values.update(kw)
    return Draft(**values)  # type: ignore[arg-type]


def sent_to(twilio: FakeTwilio) -> dict[str, dict[str, str]]:
    return {c.form["To"]: c.form for c in twilio.sent}


def test_preview_counts_channels_languages_segments_cost_and_skips(
    unpaced_runtime: Runtime, clock: FakeClock
) -> None:
    db, now = unpaced_runtime.db, clock.now
    add_contact(db, channel="sms", language="en", groups=("ward-3",))
    add_contact(db, channel="sms", language="ne", groups=("ward-3",))
    add_contact(db, channel="whatsapp", language="en", groups=("ward-3",), last_inbound_at=now)
    stale = now - timedelta(days=3)
    add_contact(db, channel="whatsapp", groups=("ward-3",), last_inbound_at=stale, has_sms=True)
    add_contact(db, channel="whatsapp", groups=("ward-3",), last_inbound_at=stale)
    add_contact(db, channel="sms", groups=("ward-3",), opted_out=True)
    add_contact(db, channel="sms", groups=("ward-4",))
    result = preview_draft(unpaced_runtime.broadcasts, draft(audience=Audience(groups=("ward-3",))))
    assert result.recipients == {("sms", "en"): 2, ("sms", "ne"): 1, ("whatsapp", "en"): 1}
    assert result.skipped == {"opted_out": 1, "outside_window_no_template": 1}
    assert result.segments[("sms", "ne")] == 2  # Devanagari: UCS-2, 67 per part
    assert result.segments[("sms", "en")] == 1
    assert result.total_segments == 2 + 2 + 1
    assert result.cost == pytest.approx(4 * 0.0079 + 0.005)
    with_template = preview_draft(
        unpaced_runtime.broadcasts,
        draft(audience=Audience(groups=("ward-3",)), template_en="HX" + "1" * 32),
    )
    assert with_template.templates == 2 and with_template.skipped == {"opted_out": 1}
    assert "Skipped: 1 opted out" in "\n".join(with_template.lines())


def test_audience_filters_are_checked() -> None:
    assert Audience.from_json({"languages": ["ne"], "ward": 3}).ward == "3"
    with pytest.raises(AudienceError, match="languages: unknown"):
        Audience.from_json({"languages": ["fr"]})
    with pytest.raises(AudienceError, match="unknown audience fields"):
        Audience.from_json({"colour": "red"})


def test_send_now_reaches_everyone_once_in_their_language(
    unpaced_runtime: Runtime, twilio: FakeTwilio
) -> None:
    db = unpaced_runtime.db
    english = add_contact(db, language="en")
    nepali = add_contact(db, language="ne")
    broadcast_id = create(unpaced_runtime.broadcasts, draft(), created_by="coordinator@example.org")
    assert preview_of(unpaced_runtime.broadcasts, broadcast_id).total == 2
    assert confirm(unpaced_runtime.broadcasts, broadcast_id) == "sending"
    bodies = {c.form["Body"] for c in twilio.sent}
    assert bodies == {ENGLISH, NEPALI}
    assert len(twilio.sent) == 2
    with db.read() as s:
        broadcast = s.get(Broadcast, broadcast_id)
        run = s.scalars(select(BroadcastRun)).one()
        statuses = s.scalars(select(Message.status).where(Message.broadcast_run_id == run.id))
        assert broadcast is not None and broadcast.status == "sent"
        assert (run.status, run.planned) == ("done", 2)
        assert sorted(statuses) == ["queued", "queued"]  # as Twilio first reports
    assert {english, nepali}
    result = funnel(unpaced_runtime.broadcasts, broadcast_id)
    assert result.total == 2 and result.stage("queued") == 2
    with pytest.raises(BroadcastError, match="not a draft"):
        confirm(unpaced_runtime.broadcasts, broadcast_id)


def test_whatsapp_outside_the_window_gets_the_template_or_sms(
    unpaced_runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    db = unpaced_runtime.db
    stale = clock.now - timedelta(hours=30)
    add_contact(db, "+9779811111111", channel="whatsapp", language="ne", last_inbound_at=stale)
    add_contact(db, "+9779822222222", channel="whatsapp", last_inbound_at=clock.now)
    add_contact(db, "+9779833333333", channel="whatsapp", last_inbound_at=stale, has_sms=True)
    broadcast_id = create(
        unpaced_runtime.broadcasts, draft(template_ne="HX" + "a" * 32), "c@example.org"
    )
    confirm(unpaced_runtime.broadcasts, broadcast_id)
    forms = sent_to(twilio)
    templated = forms["whatsapp:+9779811111111"]
    assert templated["ContentSid"] == "HX" + "a" * 32 and "Body" not in templated
    assert NEPALI in templated["ContentVariables"]
    assert forms["whatsapp:+9779822222222"]["Body"] == ENGLISH  # inside the 24 h window
    assert forms["+9779833333333"]["Body"] == ENGLISH  # no English template: SMS instead


def test_stop_during_a_broadcast_wins_for_messages_not_yet_sent(
    unpaced_runtime: Runtime, twilio: FakeTwilio
) -> None:
    phone = Phone(create_app(unpaced_runtime.settings, unpaced_runtime).test_client(), twilio)
    phone.send("hello")
    add_contact(unpaced_runtime.db)
    broadcast_id = create(unpaced_runtime.broadcasts, draft(), created_by="c@example.org")
    calls = []
    tasks = unpaced_runtime.broadcasts.tasks
    original = tasks.enqueue_send
    tasks.enqueue_send = lambda *a, **k: calls.append(a)  # type: ignore[method-assign]
    confirm(unpaced_runtime.broadcasts, broadcast_id)  # planned, not sent yet
    phone.send("STOP")
    tasks.enqueue_send = original  # type: ignore[method-assign]
    [(run_id,)] = calls
    assert send_slice(unpaced_runtime.broadcasts, run_id).state == "done"
    assert phone.replies() == []  # the broadcast never reached them
    assert len([c for c in twilio.sent if c.form["Body"] == ENGLISH]) == 1
    assert funnel(unpaced_runtime.broadcasts, broadcast_id).statuses["skipped"] == 1


def test_fan_out_restarted_mid_way_plans_everyone_exactly_once(
    unpaced_runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(25):
        add_contact(unpaced_runtime.db)
    broadcast_id = create(unpaced_runtime.broadcasts, draft(), created_by="c@example.org")
    monkeypatch.setattr(unpaced_runtime.broadcasts.tasks, "enqueue_plan", lambda run_id: None)
    run_id = start_run(unpaced_runtime.broadcasts, broadcast_id, clock.now)
    assert run_id is not None
    real_stream = fanout.stream

    def crashing(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for n, rows in enumerate(real_stream(*args, **kwargs)):  # type: ignore[arg-type]
            if n == 2:
                raise RuntimeError("worker killed")
            yield rows

    monkeypatch.setattr(fanout, "stream", crashing)
    with pytest.raises(RuntimeError):
        plan_run(unpaced_runtime.broadcasts, run_id, batch=10)
    monkeypatch.setattr(fanout, "stream", real_stream)
    assert (
        plan_run(unpaced_runtime.broadcasts, run_id, batch=10).state == "busy"
    )  # lease still held
    clock.advance(61)
    sent = []
    monkeypatch.setattr(
        unpaced_runtime.broadcasts.tasks, "enqueue_send", lambda run_id: sent.append(run_id)
    )
    result = plan_run(unpaced_runtime.broadcasts, run_id, batch=10)
    assert (result.state, result.planned) == ("planned", 25)
    with unpaced_runtime.db.read() as s:
        rows = s.scalar(
            select(func.count(func.distinct(Message.contact_id))).where(
                Message.broadcast_run_id == run_id
            )
        )
        total = s.scalar(select(func.count()).where(Message.broadcast_run_id == run_id))
    assert rows == total == 25
    assert sent == [run_id]


def test_the_same_occurrence_is_run_once(unpaced_runtime: Runtime, clock: FakeClock) -> None:
    add_contact(unpaced_runtime.db)
    broadcast_id = create(unpaced_runtime.broadcasts, draft(), created_by="c@example.org")
    at = clock.now.replace(microsecond=0)
    assert start_run(unpaced_runtime.broadcasts, broadcast_id, at) is not None
    assert start_run(unpaced_runtime.broadcasts, broadcast_id, at) is None


def test_cancel_stops_everything_not_yet_handed_over(
    unpaced_runtime: Runtime, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(30):
        add_contact(unpaced_runtime.db)
    broadcast_id = create(unpaced_runtime.broadcasts, draft(), created_by="c@example.org")
    monkeypatch.setattr(unpaced_runtime.broadcasts.tasks, "enqueue_send", lambda *a, **k: None)
    confirm(unpaced_runtime.broadcasts, broadcast_id)
    assert cancel(unpaced_runtime.broadcasts, broadcast_id) == 30
    with unpaced_runtime.db.read() as s:
        run_id = s.scalars(select(BroadcastRun.id)).one()
    assert send_slice(unpaced_runtime.broadcasts, run_id).state == "stopped"
    assert twilio.sent == []
    assert funnel(unpaced_runtime.broadcasts, broadcast_id).statuses == {"canceled": 30}
    with pytest.raises(BroadcastError, match="already canceled"):
        cancel(unpaced_runtime.broadcasts, broadcast_id)


def test_nothing_is_sent_in_quiet_hours_and_sending_resumes_after(
    unpaced_runtime: Runtime, twilio: FakeTwilio, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_contact(unpaced_runtime.db)
    broadcast_id = create(unpaced_runtime.broadcasts, draft(), created_by="c@example.org")
    scheduled: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        unpaced_runtime.broadcasts.tasks, "enqueue_send", lambda *a, **k: scheduled.append((a, k))
    )
    clock.now = datetime(2026, 11, 1, 16, 30, tzinfo=UTC)  # 22:15 in Kathmandu
    confirm(unpaced_runtime.broadcasts, broadcast_id)
    with unpaced_runtime.db.read() as s:
        run_id = s.scalars(select(BroadcastRun.id)).one()
    result = send_slice(unpaced_runtime.broadcasts, run_id)
    assert result.state == "quiet" and twilio.sent == []
    assert result.resume_at == datetime(2026, 11, 2, 1, 15, tzinfo=UTC)  # 07:00 local
    assert send_slice(unpaced_runtime.broadcasts, run_id).state == "busy"  # held until then
    clock.now = datetime(2026, 11, 2, 1, 16, tzinfo=UTC)
    assert send_slice(unpaced_runtime.broadcasts, run_id, token=result.resume_at).state == "done"
    assert len(twilio.sent) == 1


def test_quiet_hours_span_midnight() -> None:
    from datetime import time

    quiet = (time(21), time(7))
    assert in_quiet_hours(time(23, 30), quiet) and in_quiet_hours(time(6, 59), quiet)
    assert not in_quiet_hours(time(7), quiet) and not in_quiet_hours(time(20, 59), quiet)
    assert in_quiet_hours(time(13), (time(12), time(14)))
    assert not in_quiet_hours(time(13), None)


def test_recurring_schedules() -> None:
    assert parse_every("sun 08:00") == "0 8 * * sun"
    assert parse_every("every mon,thu 18:30") == "30 18 * * mon,thu"
    assert parse_every("daily 7:05") == "5 7 * * *"
    assert parse_every("0 8 * * sun") == "0 8 * * sun"
    with pytest.raises(BroadcastError):
        parse_every("someday 25:00")
    row = Broadcast(schedule="recurring", cron="0 8 * * sun", timezone="Asia/Kathmandu")
    # Sunday 2026-11-01 08:00 in Kathmandu is 02:15 UTC; fired a little late, same occurrence.
    late = datetime(2026, 11, 1, 2, 20, tzinfo=UTC)
    assert occurrence(row, late) == datetime(2026, 11, 1, 2, 15, tzinfo=UTC)


def test_a_broadcast_can_invite_to_the_survey(unpaced_runtime: Runtime, twilio: FakeTwilio) -> None:
    phone = Phone(create_app(unpaced_runtime.settings, unpaced_runtime).test_client(), twilio)
    phone.send("hello")
    broadcast_id = create(
        unpaced_runtime.broadcasts,
        draft(survey_key="community_assessment"),
        created_by="c@example.org",
    )
    confirm(unpaced_runtime.broadcasts, broadcast_id)
    [message] = phone.replies()
    assert message.startswith(ENGLISH) and message.endswith(
        "Reply SURVEY to take part in our short community survey."
    )
    assert "biggest problem" in phone.send("SURVEY")[0]


def test_bad_drafts_are_refused_with_the_reason(unpaced_runtime: Runtime, clock: FakeClock) -> None:
    with pytest.raises(BroadcastError, match="en message is empty"):
        create(unpaced_runtime.broadcasts, draft(body_en=" "), created_by="x")
    with pytest.raises(BroadcastError, match="in the past"):
        create(
            unpaced_runtime.broadcasts, draft(schedule="once", send_at=clock.now), created_by="x"
        )
    with pytest.raises(BroadcastError, match="no survey"):
        create(unpaced_runtime.broadcasts, draft(survey_key="nope"), created_by="x")
