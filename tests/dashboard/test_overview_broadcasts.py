"""The overview's figures, broadcasts from the dashboard, and the admin pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select

from bot.db.models import Broadcast, Message, User
from bot.runtime import Runtime
from dashboard.overview import compute, first_id_since
from testkit.fake_rasa import FakeRasa
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.support import csrf_token
from tests.support.builders import add_contact
from tests.support.clock import FakeClock
from tests.support.phone import Phone


def test_overview_counts_the_last_days(
    nlu_runtime: Runtime, member: Phone, rasa: FakeRasa, twilio: FakeTwilio, clock: FakeClock
) -> None:
    rasa.answers["what are the steps"] = [("faq_steps", 0.95)]
    member.send("what are the steps")  # day 1: answered
    clock.advance(86400)
    member.send("who won the match")  # day 2: out of scope, for review
    other = Phone(member.client, twilio)
    other.send("STOP")
    with nlu_runtime.db.read() as session:
        figures = compute(session, clock.now, nlu_runtime.settings.zone, days=3)
        first = first_id_since(session, clock.now - timedelta(hours=2))
        ids = session.scalars(select(Message.id).order_by(Message.id)).all()
    assert figures.inbound == [0, 1, 2] and figures.outbound == [0, 1, 2]
    assert figures.opt_outs == [0, 0, 1] and figures.opt_ins == [0, 0, 0]
    assert figures.top_topics == [("faq_steps", 1)]
    assert (figures.questions, figures.unanswered) == (3, 1)
    assert figures.unanswered_rate == 1 / 3
    assert figures.daily_unanswered_rate == [0.0, 0.0, 50.0]
    assert (figures.contacts, figures.opted_out, figures.open_review) == (2, 1, 1)
    assert first <= ids[2]  # bisecting the ids never skips a message of the window


def test_overview_page_draws_charts(as_role: Callable[[str], FlaskClient], phone: Phone) -> None:
    phone.send("hi")
    page = as_role("admin").get("/dashboard/").get_data(as_text=True)
    # Messages, opt-ins/outs, unanswered rate; no topics yet.
    assert page.count('<svg class="chart"') == 3
    assert "Messages per day" in page and "No data yet." in page


def test_create_preview_send_and_follow_a_broadcast(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, twilio: FakeTwilio, clock: FakeClock
) -> None:
    for n in range(3):
        add_contact(runtime.db, groups=("ward-3",), language="ne" if n else "en")
    add_contact(runtime.db, groups=("ward-3",), opted_out=True)
    add_contact(runtime.db, groups=("ward-9",))
    client = as_role("mobilizer")
    token = csrf_token(client, "/dashboard/broadcasts/new")
    form = {
        "csrf_token": token, "title": "Camp", "body_en": "Health camp on Sunday",
        "body_ne": "आइतबार स्वास्थ्य शिविर", "groups": "ward-3", "schedule": "now",
        "survey_key": "",
    }  # fmt: skip
    preview = client.post("/dashboard/broadcasts/preview", data=form).get_data(as_text=True)
    assert re.search(r'id="preview-recipients">3<', preview)
    assert "1 opted out" in preview
    theirs = client.post("/dashboard/broadcasts/new", data=form | {"groups": "ward-9"})
    assert theirs.status_code == 400  # not their group
    everyone = client.post("/dashboard/broadcasts/new", data={**form, "groups": []})
    assert everyone.status_code == 400 and b"your groups" in everyone.data
    created = client.post("/dashboard/broadcasts/new", data=form | {"action": "create"})
    assert created.status_code == 303
    detail = client.get(created.location).get_data(as_text=True)
    assert "draft" in detail and "Send now" in detail
    broadcast = int(created.location.rsplit("/", 1)[1])
    client.post(f"/dashboard/broadcasts/{broadcast}/confirm", data={"csrf_token": token})
    sent = twilio.wait_for(3, timeout=10)
    assert sorted(c.form["Body"] for c in sent) == sorted(
        ["Health camp on Sunday", "आइतबार स्वास्थ्य शिविर", "आइतबार स्वास्थ्य शिविर"]
    )
    page = client.get(f"/dashboard/broadcasts/{broadcast}").get_data(as_text=True)
    assert "Delivery funnel" in page and 'aria-label="Delivery funnel"' in page
    other = as_role("other_mobilizer")
    assert other.get(f"/dashboard/broadcasts/{broadcast}").status_code == 404
    assert "Camp" not in other.get("/dashboard/broadcasts").get_data(as_text=True)
    assert "Camp" in as_role("coordinator").get("/dashboard/broadcasts").get_data(as_text=True)


def test_schedule_then_cancel(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, clock: FakeClock
) -> None:
    add_contact(runtime.db, groups=("ward-3",))
    client = as_role("coordinator")
    token = csrf_token(client, "/dashboard/broadcasts/new")
    form = {
        "csrf_token": token, "title": "Weekly", "body_en": "Meeting at 10", "body_ne": "बैठक",
        "schedule": "recurring", "every": "sun 08:00", "survey_key": "", "action": "create",
    }  # fmt: skip
    bad = client.post("/dashboard/broadcasts/new", data=form | {"every": "someday"})
    assert bad.status_code == 400 and b"expected" in bad.data
    past = client.post(
        "/dashboard/broadcasts/new", data=form | {"schedule": "once", "send_at": "2020-01-01T08:00"}
    )
    assert past.status_code == 400 and b"in the past" in past.data
    created = client.post("/dashboard/broadcasts/new", data=form)
    broadcast = int(created.location.rsplit("/", 1)[1])
    client.post(f"/dashboard/broadcasts/{broadcast}/confirm", data={"csrf_token": token})
    page = client.get(f"/dashboard/broadcasts/{broadcast}").get_data(as_text=True)
    assert 'id="status">scheduled' in page and "next " in page
    client.post(f"/dashboard/broadcasts/{broadcast}/cancel", data={"csrf_token": token})
    with runtime.db.read() as session:
        assert session.scalar(select(Broadcast.status)) == "canceled"
    again = client.post(
        f"/dashboard/broadcasts/{broadcast}/cancel",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert "already canceled" in again.get_data(as_text=True)


def test_admins_manage_accounts(as_role: Callable[[str], FlaskClient], runtime: Runtime) -> None:
    client = as_role("admin")
    token = csrf_token(client, "/dashboard/users")
    created = client.post(
        "/dashboard/users",
        data={"csrf_token": token, "email": "new@example.org", "role": "mobilizer",
              "groups": "ward-1, ward-2", "password": "long enough pw", "phone": ""},
    )  # fmt: skip
    assert created.status_code == 303
    weak = client.post(
        "/dashboard/users",
        data={"csrf_token": token, "email": "weak@example.org", "role": "mobilizer",
              "password": "short"},
    )  # fmt: skip
    assert weak.status_code == 400 and b"at least 10 characters" in weak.data
    with runtime.db.read() as session:
        user = session.scalar(select(User).where(User.email == "new@example.org"))
    assert user is not None
    page = client.get(f"/dashboard/users/{user.id}").get_data(as_text=True)
    assert "ward-1, ward-2" in page
    client.post(
        f"/dashboard/users/{user.id}",
        data={"csrf_token": token, "role": "coordinator", "name": "New", "groups": "",
              "active": "y", "phone": "", "password": ""},
    )  # fmt: skip
    with runtime.db.read() as session:
        assert session.scalar(select(User.role).where(User.id == user.id)) == "coordinator"
    settings = client.get("/dashboard/settings").get_data(as_text=True)
    assert "test-secret-key" not in settings and "test-auth-token" not in settings
    assert "HANDOFF_HOURS" in settings
    audit = client.get("/dashboard/audit").get_data(as_text=True)
    assert "user created" in audit and "user updated" in audit
