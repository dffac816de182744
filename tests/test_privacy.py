"""Personal data stays out of logs and console output (issue 12).

A full run — signed webhooks, the worker, NLU, a survey of feedback, delivery reports, a
failing provider, STOP, the simulator and the dashboard — is watched at DEBUG level: no log
line and nothing printed may contain the person's number (in any writing) or what they wrote.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from bot.app import create_app
from bot.channels.console import ConsoleChannel
from bot.core.messages import Channel, Language, Outbound
from bot.db.database import Database
from bot.db.models import Contact, Message
from bot.privacy import mask_phone, scrub_phones
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from nlu.catalogue import Catalogue
from testkit.fake_rasa import FakeRasa
from testkit.fake_twilio import FakeTwilio
from tests.conftest import FAQ_FIXTURE
from tests.dashboard.support import add_user, csrf_token, signed_in
from tests.support.clock import FakeClock
from tests.support.phone import Phone, post_signed

RASA_TOKEN = "rasa-token-for-privacy-test"
SMS_NUMBER = "+9779841234567"
WHATSAPP_NUMBER = "+9779852345678"
# What each person wrote: phrases found nowhere else.
QUESTION = "zebra umbrella quinoa"
FEEDBACK = "marigold kettle orchestra"
REPLY_BY_HAND = "saffron lighthouse pebble"
SIMULATED = "tangerine cobalt whistle"


def writings(e164: str) -> list[str]:
    """A Nepali number as logs might show it: E.164, without +, national, spaced."""
    national = e164.removeprefix("+977")
    return [e164, e164[1:], national, f"{national[:3]} {national[3:]}"]


@pytest.fixture
def site(env: dict[str, str], rasa: FakeRasa, clock: FakeClock) -> Iterator[tuple[Runtime, object]]:
    rasa.token = RASA_TOKEN
    settings = Settings.from_mapping(
        env | {"RASA_URL": rasa.url, "RASA_TOKEN": RASA_TOKEN, "NLU_TIMEOUT_MS": "500"}
    )
    runtime = Runtime(
        settings,
        huey=make_huey(settings, immediate=True),
        clock=clock,
        catalogue=Catalogue.load(FAQ_FIXTURE),
    )
    app = create_app(settings, runtime)
    app.config["TESTING"] = True
    yield runtime, app
    runtime.close()


def test_a_full_run_logs_no_number_and_no_message_text(
    site: tuple[Runtime, object],
    twilio: FakeTwilio,
    rasa: FakeRasa,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime, app = site
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="bot")  # create_app sets it to INFO
    client = app.test_client()  # type: ignore[attr-defined]
    sms = Phone(client, twilio, SMS_NUMBER)
    whatsapp = Phone(client, twilio, WHATSAPP_NUMBER, whatsapp=True)

    # Conversations through signed webhooks, the worker and Rasa (which wants its token).
    assert sms.send("hi")
    rasa.answers[QUESTION] = [("out_of_scope", 0.9)]
    assert sms.send(QUESTION)
    assert whatsapp.send(f"FEEDBACK {FEEDBACK}")
    assert rasa.calls and rasa.refused == 0
    # Delivery reports, including an unknown one, name the person's number.
    for sent in twilio.sent[:2]:
        form = {
            "MessageSid": sent.sid or "",
            "MessageStatus": "delivered",
            "AccountSid": sent.account_sid,
            "To": sent.form["To"],
        }
        assert post_signed(client, "/webhooks/twilio/status", form).status_code == 200
    # A provider failing until the retries run out (the warning names the message only).
    cap = runtime.outbox.policy.max_attempts
    twilio.fail_next(503, times=cap)
    sms.send("HELP")
    for _ in range(cap):
        clock.advance(400)
        runtime.sweep()
    assert sms.send("STOP") and not sms.send("hello")
    assert sms.send("START")

    # The simulator prints what it "sends" on the console.
    page = client.get("/simulator/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    said = client.post(
        "/simulator/messages",
        json={"phone": "9841234567", "body": SIMULATED},
        headers={"X-CSRF-Token": csrf.group(1)},
    )
    assert said.status_code == 200
    simulated_phone = client.get("/simulator/messages").get_json()["phone"]

    # The dashboard: a coordinator finds the person, reads the thread, answers by hand.
    coordinator = add_user(
        runtime.db, "coord@example.org", "coordinator", generate_password_hash("pw")
    )
    staff = signed_in(app, runtime.db, coordinator)  # type: ignore[arg-type]
    with runtime.db.read() as session:
        contact_id = session.scalar(
            select(Contact.id).where(Contact.phone == SMS_NUMBER, Contact.simulated.is_(False))
        )
    assert contact_id is not None
    assert staff.get(f"/dashboard/conversations?phone={SMS_NUMBER[4:]}").status_code == 200
    assert staff.get(f"/dashboard/conversations/{contact_id}").status_code == 200
    assert staff.get(f"/dashboard/contacts/{contact_id}").status_code == 200
    assert staff.get("/dashboard/feedback").status_code == 200
    answered = staff.post(
        f"/dashboard/conversations/{contact_id}/reply",
        data={
            "csrf_token": csrf_token(staff, f"/dashboard/conversations/{contact_id}"),
            "body": REPLY_BY_HAND,
            "pause_hours": "1",
        },
    )
    assert answered.status_code == 303
    assert any(REPLY_BY_HAND in c.form.get("Body", "") for c in twilio.sent)

    # The run happened: the messages are stored (where they belong).
    with runtime.db.read() as session:
        bodies = set(session.scalars(select(Message.body)))
    assert QUESTION in bodies and any(FEEDBACK in (b or "") for b in bodies)

    out = capsys.readouterr()
    printed = out.out + out.err
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "[simulator →" in printed and caplog.records  # both were watched
    seen = (logged + printed).lower()
    for number in (SMS_NUMBER, WHATSAPP_NUMBER, simulated_phone):
        for writing in writings(number):
            assert writing not in seen, f"{writing!r} in output"
    for phrase in (QUESTION, FEEDBACK, REPLY_BY_HAND, SIMULATED):
        assert phrase not in seen, f"{phrase!r} in output"
    assert RASA_TOKEN not in seen
    assert mask_phone(simulated_phone) in printed  # the console says who, masked


def test_database_errors_do_not_carry_the_values(database_url: str) -> None:
    """An IntegrityError (logged with its traceback) names neither the number nor the text:
    SQLAlchemy hides the parameters, and PostgreSQL's DETAIL line is dropped."""
    db = Database(database_url)
    try:
        with db.write() as session:
            session.add(Contact(phone=SMS_NUMBER, channel="sms", simulated=False))
        with pytest.raises(IntegrityError) as caught, db.write() as session:
            session.add(Contact(phone=SMS_NUMBER, channel="sms", simulated=False))
        with pytest.raises(IntegrityError) as check, db.begin() as conn:
            conn.execute(text("INSERT INTO messages (body) VALUES (:body)"), {"body": QUESTION})
    finally:
        db.dispose()
    import traceback

    for error in (caught.value, check.value):
        shown = "".join(traceback.format_exception(error))
        assert "hidden" in shown
        for writing in writings(SMS_NUMBER):
            assert writing not in shown
        assert QUESTION not in shown


def test_the_console_masks_the_number_and_keeps_the_text_unless_asked() -> None:
    message = Outbound(Channel.SMS, "+9779812345678", QUESTION, Language.EN)
    quiet, chatty = io.StringIO(), io.StringIO()
    sent = ConsoleChannel(quiet).send(message)
    ConsoleChannel(chatty, show_bodies=True).send(message)
    assert quiet.getvalue() == f"[sms → +97798*****678] reply {sent.provider_id}, 21 chars\n"
    assert QUESTION not in quiet.getvalue() and "9812345678" not in quiet.getvalue()
    assert chatty.getvalue().endswith(f": {QUESTION}\n")


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+9779812345678", "+97798*****678"),
        ("whatsapp:+9779812345678", "whatsapp:+97798*****678"),
        ("+14155552671", "+141*****671"),
        ("+447700900123", "+4477*****123"),
        ("9812345678", "98*****678"),
        ("+1234", "+1***"),
        ("", ""),
        ("whatsapp:", "whatsapp:"),
        ("not a number", "********"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_scrub_phones_masks_numbers_in_free_text() -> None:
    scrubbed = scrub_phones("The 'To' number +977 981-234-5678 is invalid; SID 21211 stays")
    assert "981" not in scrubbed.replace("+97798", "") and "21211 stays" in scrubbed
    assert "+97798*****678" in scrubbed
