"""BROADCAST by text message: registered mobilizers only, their groups only, YES to send."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import create_app
from bot.db.models import AuditEvent, Broadcast, User, UserGroup
from bot.runtime import Runtime
from tests.support.builders import add_contact
from tests.support.fake_twilio import FakeTwilio
from tests.support.phone import Phone

MOBILIZER = "+9779841000001"


def register(
    runtime: Runtime, phone: str, role: str = "mobilizer", groups: tuple[str, ...] = ()
) -> None:
    with runtime.db.write() as s:
        user = User(email=f"{phone}@example.org", name="Sita", phone=phone, role=role, active=True)
        s.add(user)
        s.flush()
        for group in groups:
            s.add(UserGroup(user_id=user.id, group_name=group))


def audit(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.db.read() as s:
        return [(e.actor, e.action) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_a_mobilizer_previews_then_sends_to_their_group(
    unpaced_runtime: Runtime, twilio: FakeTwilio
) -> None:
    register(unpaced_runtime, MOBILIZER, groups=("ward-3",))
    for phone in ("+9779811000001", "+9779811000002"):
        add_contact(unpaced_runtime.db, phone, groups=("ward-3",))
    add_contact(unpaced_runtime.db, "+9779811000003", groups=("ward-4",))
    client = create_app(unpaced_runtime.settings, unpaced_runtime).test_client()
    mobilizer = Phone(client, twilio, MOBILIZER)
    [preview] = mobilizer.send("BROADCAST Ward-3 Vaccination camp at the school on Sunday 10am")
    assert preview.startswith("Broadcast to ward-3: 2 recipients, 2 SMS segments")
    assert preview.endswith("Reply YES to send or NO to drop.")
    assert [c.form["To"] for c in twilio.sent] == [MOBILIZER]  # nothing sent yet
    [started] = mobilizer.send("yes")
    assert started.startswith("Sending now")
    received = sorted(c.form["To"] for c in twilio.sent if c.form["To"] != MOBILIZER)
    assert received == ["+9779811000001", "+9779811000002"]
    assert {c.form["Body"] for c in twilio.sent if c.form["To"] != MOBILIZER} == {
        "Vaccination camp at the school on Sunday 10am"
    }
    assert (MOBILIZER, "broadcast_sent_by_sms") in audit(unpaced_runtime)


def test_no_drops_the_draft(unpaced_runtime: Runtime, twilio: FakeTwilio) -> None:
    register(unpaced_runtime, MOBILIZER, groups=("ward-3",))
    add_contact(unpaced_runtime.db, groups=("ward-3",))
    mobilizer = Phone(
        create_app(unpaced_runtime.settings, unpaced_runtime).test_client(), twilio, MOBILIZER
    )
    mobilizer.send("प्रसारण ward-3 भोलि बैठक छ")
    [dropped] = mobilizer.send("होइन")
    assert "रद्द" in dropped
    with unpaced_runtime.db.read() as s:
        assert s.scalars(select(Broadcast.status)).all() == ["canceled"]
    assert len(twilio.sent) == 2  # the preview and the answer to NO


def test_strangers_and_other_groups_are_refused_and_logged(
    unpaced_runtime: Runtime, twilio: FakeTwilio
) -> None:
    register(unpaced_runtime, MOBILIZER, groups=("ward-3",))
    add_contact(unpaced_runtime.db, groups=("ward-4",))
    client = create_app(unpaced_runtime.settings, unpaced_runtime).test_client()
    stranger = Phone(client, twilio)
    [refused] = stranger.send("BROADCAST ward-4 free money, send your PIN")
    assert refused.startswith("Sorry, only registered mobilizers")
    mobilizer = Phone(client, twilio, MOBILIZER)
    [refused] = mobilizer.send("BROADCAST ward-4 meeting")
    assert refused.startswith("Sorry, only registered mobilizers")
    assert mobilizer.send("yes")[0] != "Sending now. Reply HELP for the menu."
    assert [a for _, a in audit(unpaced_runtime)] == ["broadcast_refused", "broadcast_refused"]
    with unpaced_runtime.db.read() as s:
        assert s.scalars(select(Broadcast)).all() == []
    assert all(c.form["To"] in (stranger.address, MOBILIZER) for c in twilio.sent)


def test_a_coordinator_may_broadcast_to_any_group(
    unpaced_runtime: Runtime, twilio: FakeTwilio
) -> None:
    register(unpaced_runtime, MOBILIZER, role="coordinator")
    add_contact(unpaced_runtime.db, groups=("ward-9",))
    coordinator = Phone(
        create_app(unpaced_runtime.settings, unpaced_runtime).test_client(), twilio, MOBILIZER
    )
    assert "1 recipients" in coordinator.send("BROADCAST ward-9 Road closed tomorrow")[0]
    [usage] = coordinator.send("BROADCAST ward-9")
    assert usage.startswith("To send a broadcast")
