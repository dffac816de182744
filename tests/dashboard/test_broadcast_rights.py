"""Broadcast rights, written as the attacks a signed-in account could try.

Who may send: the simulator never speaks for a staff phone; only a broadcast's creator or
staff confirm or cancel it; mobilizers' recurring broadcasts have a minimum interval and need a
coordinator's approval; rights are checked again when a broadcast fires.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update

from bot.broadcasts.audience import Audience
from bot.broadcasts.service import (
    BroadcastError,
    Draft,
    approve,
    cancel,
    confirm,
    create,
    start_run,
)
from bot.db.models import AuditEvent, Broadcast, Message, User, UserGroup
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.conftest import Accounts
from tests.dashboard.support import csrf_token
from tests.support.builders import add_contact
from tests.support.phone import Phone

COORDINATOR_PHONE = "+9779851000001"
WARD3 = ("+9779811000001", "+9779811000002")


def status_of(runtime: Runtime, broadcast_id: int) -> str:
    with runtime.db.read() as s:
        row = s.get(Broadcast, broadcast_id)
        assert row is not None
        return row.status


def outbound_to_ward3(runtime: Runtime) -> int:
    with runtime.db.read() as s:
        return len(s.scalars(select(Message.id).where(Message.broadcast_run_id.is_not(None))).all())


def sim_token(client: FlaskClient) -> str:
    page = client.get("/simulator/").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match
    return match.group(1)


def test_the_simulator_cannot_broadcast_as_a_coordinators_phone(
    runtime: Runtime, accounts: Accounts, as_role: Callable[[str], FlaskClient], twilio: FakeTwilio
) -> None:
    with runtime.db.write() as s:
        s.execute(
            update(User).where(User.id == accounts.coordinator).values(phone=COORDINATOR_PHONE)
        )
    for phone in WARD3:
        add_contact(runtime.db, phone, groups=("ward-3",))
    attacker = as_role("mobilizer")
    token = sim_token(attacker)
    for body in ("BROADCAST ward-3 Free money: send your PIN to 9800000000", "YES", "YES 0000"):
        response = attacker.post(
            "/simulator/messages",
            json={"phone": COORDINATOR_PHONE, "body": body},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 200
    with runtime.db.read() as s:
        assert s.scalars(select(Broadcast)).all() == []
        actions = s.scalars(select(AuditEvent.action)).all()
    assert "broadcast_sent_by_sms" not in actions
    assert outbound_to_ward3(runtime) == 0
    assert [c for c in twilio.sent if c.form["To"] in WARD3] == []


@pytest.mark.parametrize("staff_phone", [True, False])
def test_a_simulated_staff_number_is_refused_by_the_desk_itself(
    runtime: Runtime, accounts: Accounts, staff_phone: bool
) -> None:
    """Even a simulated contact that has a staff number is no staff phone."""
    from bot.broadcasts.desk import SmsDesk
    from bot.core.messages import Channel, Language

    with runtime.db.write() as s:
        s.execute(
            update(User).where(User.id == accounts.coordinator).values(phone=COORDINATOR_PHONE)
        )
    add_contact(runtime.db, WARD3[0], groups=("ward-3",))
    desk = SmsDesk(runtime.broadcasts)
    phone = COORDINATOR_PHONE if staff_phone else "+9779811111111"
    reply = desk.request(phone, "ward-3 Meeting", Language.EN, "SIMx", Channel.SIMULATOR)
    assert reply.key == "broadcast_refused" and reply.draft_id is None


def test_only_the_creator_or_staff_may_confirm_or_cancel(
    runtime: Runtime, accounts: Accounts, as_role: Callable[[str], FlaskClient]
) -> None:
    drafts = [
        create(
            runtime.broadcasts,
            Draft("Camp", "Camp", "शिविर", Audience(groups=("ward-3",))),
            "coord@example.org",
        )
        for _ in range(2)
    ]
    mobilizer = as_role("mobilizer")
    token = csrf_token(mobilizer)
    # The mobilizer sees the coordinator's broadcasts to ward-3 but may not act on them.
    assert mobilizer.get(f"/dashboard/broadcasts/{drafts[0]}").status_code == 200
    for action in ("confirm", "cancel"):
        response = mobilizer.post(
            f"/dashboard/broadcasts/{drafts[0]}/{action}", data={"csrf_token": token}
        )
        assert response.status_code == 403
    assert status_of(runtime, drafts[0]) == "draft"
    with pytest.raises(BroadcastError):
        confirm(runtime.broadcasts, drafts[1], by="mob@example.org")
    with pytest.raises(BroadcastError):
        cancel(runtime.broadcasts, drafts[1], by="mob9@example.org")
    assert status_of(runtime, drafts[1]) == "draft"
    coordinator = as_role("admin")
    response = coordinator.post(
        f"/dashboard/broadcasts/{drafts[0]}/cancel", data={"csrf_token": csrf_token(coordinator)}
    )
    assert response.status_code == 303
    assert status_of(runtime, drafts[0]) == "canceled"


def test_a_mobilizer_cannot_schedule_every_minute(runtime: Runtime, accounts: Accounts) -> None:
    for every in ("* * * * *", "*/30 * * * *", "0 8,20 * * *"):
        draft = Draft(
            "Spam", "x", "x", Audience(groups=("ward-3",)), schedule="recurring", every=every
        )
        with pytest.raises(BroadcastError, match="at most once every 24 hours"):
            create(runtime.broadcasts, draft, created_by="mob@example.org")
    # Staff may (they answer for it); a daily one is fine for a mobilizer.
    draft = Draft(
        "Tick", "x", "x", Audience(groups=("ward-3",)), schedule="recurring", every="* * * * *"
    )
    assert create(runtime.broadcasts, draft, created_by="coord@example.org")
    daily = Draft(
        "Daily", "x", "x", Audience(groups=("ward-3",)), schedule="recurring", every="daily 08:00"
    )
    assert create(runtime.broadcasts, daily, created_by="mob@example.org")


def test_a_mobilizers_recurring_broadcast_waits_for_approval(
    runtime: Runtime, accounts: Accounts, as_role: Callable[[str], FlaskClient]
) -> None:
    weekly = Draft(
        "Weekly", "Clinic on Sunday", "आइतबार क्लिनिक", Audience(groups=("ward-3",)),
        schedule="recurring", every="sun 08:00",
    )  # fmt: skip
    broadcast = create(runtime.broadcasts, weekly, created_by="mob@example.org")
    mobilizer = as_role("mobilizer")
    token = csrf_token(mobilizer)
    mobilizer.post(f"/dashboard/broadcasts/{broadcast}/confirm", data={"csrf_token": token})
    assert status_of(runtime, broadcast) == "pending_approval"
    response = mobilizer.post(
        f"/dashboard/broadcasts/{broadcast}/approve", data={"csrf_token": token}
    )
    assert response.status_code == 403
    with pytest.raises(BroadcastError):
        approve(runtime.broadcasts, broadcast, by="mob@example.org")
    # Unapproved, it never fires.
    assert start_run(runtime.broadcasts, broadcast, runtime.clock()) is None
    coordinator = as_role("coordinator")
    page = coordinator.get(f"/dashboard/broadcasts/{broadcast}").get_data(as_text=True)
    assert 'id="approve-button"' in page
    coordinator.post(
        f"/dashboard/broadcasts/{broadcast}/approve", data={"csrf_token": csrf_token(coordinator)}
    )
    with runtime.db.read() as s:
        row = s.get(Broadcast, broadcast)
        assert row is not None
        assert (row.status, row.approved_by) == ("scheduled", "coord@example.org")


def test_rights_are_checked_again_when_a_broadcast_fires(
    runtime: Runtime, accounts: Accounts
) -> None:
    add_contact(runtime.db, WARD3[0], groups=("ward-3",))
    once = Draft(
        "Once", "Camp", "शिविर", Audience(groups=("ward-3",)),
        schedule="once", send_at=runtime.clock() + timedelta(hours=2),
    )  # fmt: skip
    broadcast = create(runtime.broadcasts, once, created_by="mob@example.org")
    assert confirm(runtime.broadcasts, broadcast, by="mob@example.org") == "scheduled"
    with runtime.db.write() as s:  # the mobilizer is moved to another ward meanwhile
        s.execute(delete(UserGroup).where(UserGroup.user_id == accounts.mobilizer))
    assert start_run(runtime.broadcasts, broadcast, runtime.clock()) is None
    assert status_of(runtime, broadcast) == "canceled"
    assert outbound_to_ward3(runtime) == 0
    with runtime.db.read() as s:
        assert "broadcast_refused_at_fire" in s.scalars(select(AuditEvent.action)).all()


def test_the_account_holder_sees_broadcasts_asked_for_from_their_phone(
    app,
    runtime: Runtime,
    accounts: Accounts,
    as_role: Callable[[str], FlaskClient],
    twilio: FakeTwilio,
) -> None:  # type: ignore[no-untyped-def]
    add_contact(runtime.db, WARD3[0], groups=("ward-3",))
    phone = Phone(app.test_client(), twilio, "+9779811111111")  # the mobilizer's registered phone
    [preview] = phone.send("BROADCAST ward-3 Meeting at 4pm")
    assert "Reply YES" in preview
    page = as_role("mobilizer").get("/dashboard/broadcasts").get_data(as_text=True)
    assert "was asked for by SMS from your phone (+97798*****111)" in page
    other = as_role("coordinator").get("/dashboard/broadcasts").get_data(as_text=True)
    assert "from your phone" not in other
