"""BROADCAST by text message: registered mobilizers only, their groups only, YES and the
preview's one-time code to send, in time, with the sender's rights checked again."""

from __future__ import annotations

import re

from sqlalchemy import delete, select

from bot.app import create_app
from bot.db.models import AuditEvent, Broadcast, User, UserGroup
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import add_contact
from tests.support.clock import FakeClock
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


def code_in(preview: str) -> str:
    match = re.search(r"Reply YES (\d{4}) within 10 min", preview)
    assert match, preview
    return match.group(1)


def broadcast_statuses(runtime: Runtime) -> list[str]:
    with runtime.db.read() as s:
        return list(s.scalars(select(Broadcast.status).order_by(Broadcast.id)))


def others(twilio: FakeTwilio, *phones: str) -> list[str]:
    """Numbers other than `phones` that were sent something."""
    return sorted(c.form["To"] for c in twilio.sent if c.form["To"] not in phones)


def ward3(runtime: Runtime, twilio: FakeTwilio) -> Phone:
    """A registered mobilizer of ward-3 (with two contacts there), as a phone."""
    register(runtime, MOBILIZER, groups=("ward-3",))
    for phone in ("+9779811000001", "+9779811000002"):
        add_contact(runtime.db, phone, groups=("ward-3",))
    return Phone(create_app(runtime.settings, runtime).test_client(), twilio, MOBILIZER)


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
    assert "Not you? Reply NO and tell your coordinator." in preview
    assert [c.form["To"] for c in twilio.sent] == [MOBILIZER]  # nothing sent yet
    [started] = mobilizer.send(f"yes {code_in(preview)}")
    assert started.startswith("Sending now")
    received = sorted(c.form["To"] for c in twilio.sent if c.form["To"] != MOBILIZER)
    assert received == ["+9779811000001", "+9779811000002"]
    assert {c.form["Body"] for c in twilio.sent if c.form["To"] != MOBILIZER} == {
        "Vaccination camp at the school on Sunday 10am"
    }
    assert (f"{MOBILIZER}@example.org", "broadcast_sent_by_sms") in audit(unpaced_runtime)


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


# -- attacks on the confirmation ---------------------------------------------------------------


def test_a_bare_yes_is_not_enough(unpaced_runtime: Runtime, twilio: FakeTwilio) -> None:
    mobilizer = ward3(unpaced_runtime, twilio)
    mobilizer.send("BROADCAST ward-3 Meeting at the school at 4pm")
    [asked] = mobilizer.send("YES")
    assert asked.startswith("That code does not match")
    assert others(twilio, MOBILIZER) == []
    assert broadcast_statuses(unpaced_runtime) == ["draft"]


def test_three_wrong_codes_drop_the_draft(unpaced_runtime: Runtime, twilio: FakeTwilio) -> None:
    mobilizer = ward3(unpaced_runtime, twilio)
    [preview] = mobilizer.send("BROADCAST ward-3 Meeting at the school at 4pm")
    wrong = f"{(int(code_in(preview)) + 1) % 10000:04d}"
    assert mobilizer.send(f"YES {wrong}")[0].startswith("That code does not match")
    assert mobilizer.send(f"YES {wrong}")[0].startswith("That code does not match")
    assert mobilizer.send(f"YES {wrong}")[0].startswith("The broadcast was dropped")
    # The right code comes too late: the draft is gone.
    assert not mobilizer.send(f"YES {code_in(preview)}")[0].startswith("Sending now")
    assert others(twilio, MOBILIZER) == []
    assert broadcast_statuses(unpaced_runtime) == ["canceled"]
    assert ("+9779841000001@example.org", "broadcast_code_failed") in audit(unpaced_runtime)


def test_the_code_may_be_written_in_nepali_digits(
    unpaced_runtime: Runtime, twilio: FakeTwilio
) -> None:
    mobilizer = ward3(unpaced_runtime, twilio)
    [preview] = mobilizer.send("BROADCAST ward-3 Meeting at the school at 4pm")
    nepali = code_in(preview).translate({ord(str(d)): 0x0966 + d for d in range(10)})
    [started] = mobilizer.send(f"हो {nepali}")
    assert started.startswith("अहिले पठाउँदैछौँ")
    assert others(twilio, MOBILIZER) == ["+9779811000001", "+9779811000002"]


def test_an_unconfirmed_draft_expires(
    unpaced_runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    mobilizer = ward3(unpaced_runtime, twilio)
    [preview] = mobilizer.send("BROADCAST ward-3 Meeting at the school at 4pm")
    clock.advance(10 * 60 + 1)
    [expired] = mobilizer.send(f"YES {code_in(preview)}")
    assert expired.startswith("That broadcast was not confirmed in time")
    assert others(twilio, MOBILIZER) == []
    assert broadcast_statuses(unpaced_runtime) == ["canceled"]


def test_expired_drafts_are_swept(unpaced_runtime: Runtime, twilio: FakeTwilio, clock) -> None:  # type: ignore[no-untyped-def]
    from bot.broadcasts.service import expire_drafts

    mobilizer = ward3(unpaced_runtime, twilio)
    mobilizer.send("BROADCAST ward-3 Meeting at the school at 4pm")
    assert expire_drafts(unpaced_runtime.broadcasts) == 0
    clock.advance(10 * 60 + 1)
    assert expire_drafts(unpaced_runtime.broadcasts) == 1
    assert broadcast_statuses(unpaced_runtime) == ["canceled"]


def test_rights_are_checked_again_at_confirmation(
    unpaced_runtime: Runtime, twilio: FakeTwilio
) -> None:
    mobilizer = ward3(unpaced_runtime, twilio)
    [preview] = mobilizer.send("BROADCAST ward-3 Meeting at the school at 4pm")
    with unpaced_runtime.db.write() as s:  # a coordinator moves them off ward-3 meanwhile
        s.execute(delete(UserGroup))
    [refused] = mobilizer.send(f"YES {code_in(preview)}")
    assert refused.startswith("Sorry, only registered mobilizers")
    assert others(twilio, MOBILIZER) == []
    assert broadcast_statuses(unpaced_runtime) == ["canceled"]


def test_a_deactivated_account_cannot_confirm(unpaced_runtime: Runtime, twilio: FakeTwilio) -> None:
    mobilizer = ward3(unpaced_runtime, twilio)
    [preview] = mobilizer.send("BROADCAST ward-3 Meeting at the school at 4pm")
    with unpaced_runtime.db.write() as s:
        s.execute(User.__table__.update().values(active=False))
    assert not mobilizer.send(f"YES {code_in(preview)}")[0].startswith("Sending now")
    assert others(twilio, MOBILIZER) == []


def test_another_phone_cannot_confirm_with_the_code(
    unpaced_runtime: Runtime, twilio: FakeTwilio
) -> None:
    mobilizer = ward3(unpaced_runtime, twilio)
    [preview] = mobilizer.send("BROADCAST ward-3 Meeting at the school at 4pm")
    client = create_app(unpaced_runtime.settings, unpaced_runtime).test_client()
    stranger = Phone(client, twilio, "+9779811000009")
    stranger.send(f"YES {code_in(preview)}")
    assert others(twilio, MOBILIZER, stranger.address) == []
    assert broadcast_statuses(unpaced_runtime) == ["draft"]


def test_refused_attempts_keep_no_text_and_mask_the_number(
    unpaced_runtime: Runtime, twilio: FakeTwilio, caplog
) -> None:  # type: ignore[no-untyped-def]
    client = create_app(unpaced_runtime.settings, unpaced_runtime).test_client()
    stranger = Phone(client, twilio, "+9779811000009")
    stranger.send("BROADCAST ward-4 free money, send your PIN")
    with unpaced_runtime.db.read() as s:
        [event] = s.scalars(select(AuditEvent)).all()
    assert event.actor == "+97798*****009"
    assert "PIN" not in str(event.detail)
    assert "9811000009" not in caplog.text and "PIN" not in caplog.text
