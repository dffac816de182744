"""Every dashboard route, walked as anonymous, mobilizer, coordinator and admin.

The expected access is written out here, independently of the code: a new route fails the
test until someone decides who may use it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.broadcasts.audience import Audience
from bot.broadcasts.service import Draft, create
from bot.db.models import Feedback, Message, NluExample, NluTrainingRun, UnansweredQuestion, utcnow
from bot.runtime import Runtime
from tests.dashboard.conftest import Accounts
from tests.dashboard.support import FAILING_TRAINER, contact_id, csrf_token, tag
from tests.support.phone import Phone

ALL = frozenset({"mobilizer", "coordinator", "admin"})
STAFF = frozenset({"coordinator", "admin"})
ADMIN = frozenset({"admin"})
PUBLIC = frozenset({"anonymous", *ALL})

EXPECTED: dict[str, frozenset[str]] = {
    "dashboard.login": PUBLIC,
    "dashboard.logout": PUBLIC,
    "dashboard.login_two_factor": PUBLIC,
    "dashboard.my_account": ALL,
    "dashboard.password_change": ALL,
    "dashboard.sign_out_everywhere": ALL,
    "dashboard.two_factor_setup": ALL,
    "dashboard.two_factor_off": ALL,
    "dashboard.recovery_codes_new": ALL,
    "dashboard.static": PUBLIC,
    "dashboard.home": ALL,
    "dashboard.conversations": ALL,
    "dashboard.conversation": ALL,
    "dashboard.reply": ALL,
    "dashboard.release_handoff": ALL,
    "dashboard.contacts": ALL,
    "dashboard.contact": ALL,
    "dashboard.contacts_import": STAFF,
    "dashboard.contacts_import_confirm": STAFF,
    "dashboard.contact_export": STAFF,
    "dashboard.contact_erase": ADMIN,
    "dashboard.broadcasts": ALL,
    "dashboard.broadcast_new": ALL,
    "dashboard.broadcast_preview": ALL,
    "dashboard.broadcast": ALL,
    "dashboard.broadcast_confirm": ALL,
    "dashboard.broadcast_cancel": ALL,
    "dashboard.broadcast_approve": STAFF,
    "dashboard.surveys": STAFF,
    "dashboard.survey": STAFF,
    "dashboard.survey_export": STAFF,
    "dashboard.feedback_inbox": STAFF,
    "dashboard.feedback_item": STAFF,
    "dashboard.feedback_answer": STAFF,
    "dashboard.feedback_status": STAFF,
    "dashboard.nlu_review": STAFF,
    "dashboard.nlu_assign": STAFF,
    "dashboard.nlu_out_of_scope": STAFF,
    "dashboard.nlu_dismiss": STAFF,
    "dashboard.nlu_example_delete": STAFF,
    "dashboard.nlu_retrain": STAFF,
    "dashboard.nlu_run": STAFF,
    "dashboard.users": ADMIN,
    "dashboard.user": ADMIN,
    "dashboard.user_sign_out": ADMIN,
    "dashboard.user_two_factor_reset": ADMIN,
    "dashboard.audit": ADMIN,
    "dashboard.settings": ADMIN,
    "simulator.page": ALL,
    "simulator.send": ALL,
    "simulator.thread": ALL,
    "simulator.new_phone": ALL,
    "simulator.static": PUBLIC,
}
ROLES = ("anonymous", "mobilizer", "coordinator", "admin")
# Arguments some routes need besides the ids.
EXTRA: dict[str, dict[str, object]] = {
    "simulator.static": {"filename": "simulator.css"},
}


def _seed(runtime: Runtime, phone: Phone, accounts: Accounts) -> dict[str, object]:
    """One of everything a route can name, in the mobilizer's group ward-3."""
    phone.send("hello")
    contact = contact_id(runtime.db, phone.number)
    tag(runtime.db, contact, "ward-3")
    now = utcnow()
    with runtime.db.write() as session:
        message_id = session.scalar(
            select(Message.id).where(Message.contact_id == contact, Message.direction == "in")
        )
        assert message_id is not None
        session.add(
            Feedback(
                reference="FB-ACCESS1", contact_id=contact, category="complaint", body="tap",
                channel="sms", language="en", status="new", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        question = UnansweredQuestion(
            message_id=message_id, contact_id=contact, reason="low_confidence",
            candidates=[["faq_meaning", 0.4]], status="open", created_at=now,
        )  # fmt: skip
        example = NluExample(
            text="what is mobilising", intent="faq_meaning", language="en",
            created_by="someone", created_at=now,
        )  # fmt: skip
        run = NluTrainingRun(
            status="succeeded", stage="done", progress=100, model_name="nlu-x", examples=0,
            started_by="someone", created_at=now,
        )  # fmt: skip
        session.add_all([question, example, run])
        session.flush()
        ids = {"item_id": question.id, "example_id": example.id, "run_id": run.id}
    broadcast = create(
        runtime.broadcasts,
        Draft("Camp", "Camp on Sunday", "आइतबार शिविर", Audience(groups=("ward-3",))),
        created_by="mob@example.org",  # only its creator or staff may confirm or cancel it
    )
    return {
        "contact_id": contact,
        "reference": "FB-ACCESS1",
        "key": "community_assessment",
        "broadcast_id": broadcast,
        "user_id": accounts.coordinator,
        "filename": "dashboard.css",
        **ids,
    }


def _check(role: str, endpoint: str, method: str, status: int, location: str) -> None:
    allowed = role in EXPECTED[endpoint]
    where = f"{method} {endpoint} as {role}: {status} {location}"
    if role == "anonymous" and not allowed:
        assert status == 302 and "/dashboard/login" in location, where
    elif not allowed:
        assert status == 403, where
    else:
        assert status < 500 and status not in (401, 403), where
        if method == "GET":
            assert status in (200, 302), where


@pytest.mark.parametrize("settings_overrides", [FAILING_TRAINER])
def test_every_route_checks_login_and_role(
    app: Flask,
    runtime: Runtime,
    phone: Phone,
    accounts: Accounts,
    as_role: Callable[[str], FlaskClient],
) -> None:
    values = _seed(runtime, phone, accounts)
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in ("dashboard", "simulator")
    ]
    assert {r.endpoint for r in rules} == set(EXPECTED), "decide who may use the new route"
    # Reading first, then the changes (a cancel must not run before a confirm); signing out
    # (it clears the session and its CSRF token) last.
    ends_session = ("dashboard.sign_out_everywhere", "dashboard.logout")
    ordered = sorted(
        rules,
        key=lambda r: (
            "POST" in r.methods,
            ends_session.index(r.endpoint) + 1 if r.endpoint in ends_session else 0,
            r.endpoint,
        ),
    )
    for role in ROLES:
        client = as_role(role)
        token = csrf_token(client, "/dashboard/login")
        with app.test_request_context():
            from flask import url_for

            urls = {
                rule.endpoint: url_for(
                    rule.endpoint,
                    **{arg: values[arg] for arg in rule.arguments} | EXTRA.get(rule.endpoint, {}),
                )
                for rule in ordered
            }
        for rule in ordered:
            url = urls[rule.endpoint]
            if "GET" in rule.methods:
                response = client.get(url)
                response.close()  # static files are streamed from an open file
                _check(role, rule.endpoint, "GET", response.status_code, response.location or "")
            if "POST" in rule.methods and rule.endpoint not in ("dashboard.login",):
                if rule.endpoint in ("simulator.send", "simulator.new_phone"):
                    page = client.get("/simulator/").get_data(as_text=True)
                    marker = 'name="csrf-token" content="'
                    sim = page.split(marker)[1].split('"')[0] if marker in page else "none"
                    response = client.post(
                        url, json={"phone": "9800000077", "body": "hi"},
                        headers={"X-CSRF-Token": sim},
                    )  # fmt: skip
                else:
                    response = client.post(url, data={"csrf_token": token})
                _check(role, rule.endpoint, "POST", response.status_code, response.location or "")
    trainer = app.extensions["dashboard"].trainer
    if trainer is not None and trainer.thread is not None:
        trainer.thread.join(timeout=10)


def test_a_post_without_the_csrf_token_is_refused(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, phone: Phone
) -> None:
    phone.send("hello")
    contact = contact_id(runtime.db, phone.number)
    tag(runtime.db, contact, "ward-3")
    client = as_role("mobilizer")
    response = client.post(
        f"/dashboard/conversations/{contact}/reply", data={"body": "hi", "pause_hours": "24"}
    )
    assert response.status_code == 400
    assert b"CSRF" in response.data
    with runtime.db.read() as session:
        sent = session.scalar(select(Message.id).where(Message.kind == "manual_reply"))
    assert sent is None


def test_mobilizers_see_only_their_groups(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, phone: Phone, twilio
) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = phone, Phone(phone.client, twilio)
    mine.send("my ward question")
    theirs.send("other ward question")
    own = contact_id(runtime.db, mine.number)
    other = contact_id(runtime.db, theirs.number)
    tag(runtime.db, own, "ward-3")
    tag(runtime.db, other, "ward-9")
    client = as_role("mobilizer")
    listing = client.get("/dashboard/conversations").get_data(as_text=True)
    assert mine.number in listing and theirs.number not in listing
    contacts = client.get("/dashboard/contacts").get_data(as_text=True)
    assert mine.number in contacts and theirs.number not in contacts
    for path in (f"/dashboard/conversations/{other}", f"/dashboard/contacts/{other}"):
        assert client.get(path).status_code == 404
    found = client.get("/dashboard/conversations?q=ward+question").get_data(as_text=True)
    assert "my ward question" in found and "other ward question" not in found
    token = csrf_token(client)
    refused = client.post(
        f"/dashboard/conversations/{other}/reply",
        data={"csrf_token": token, "body": "hello", "pause_hours": "24"},
    )
    assert refused.status_code == 404
    coordinator = as_role("coordinator").get("/dashboard/conversations").get_data(as_text=True)
    assert mine.number in coordinator and theirs.number in coordinator


def test_the_root_sends_to_the_dashboard_and_anonymous_to_login(
    as_role: Callable[[str], FlaskClient],
) -> None:
    anonymous = as_role("anonymous")
    assert anonymous.get("/").location.endswith("/dashboard/")
    response = anonymous.get("/dashboard/")
    assert response.status_code == 302
    assert response.location.startswith("/dashboard/login?next=/dashboard/")
    assert as_role("mobilizer").get("/dashboard/").location.endswith("/dashboard/conversations")
    assert as_role("coordinator").get("/dashboard/").status_code == 200
