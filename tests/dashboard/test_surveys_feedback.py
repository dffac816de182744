"""Survey results (per version, charts, CSV with a date filter) and the feedback inbox."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select

from bot.db.models import Feedback
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.support import csrf_token
from tests.support.clock import FakeClock
from tests.support.phone import Phone


def complete_survey(phone: Phone) -> None:
    phone.send("SURVEY")
    for answer in ("pani", "1 2", "sabai", "cha", "3", "hoina", "whatsapp", "2"):
        phone.send(answer)


def test_survey_page_and_export(
    as_role: Callable[[str], FlaskClient],
    phone: Phone,
    twilio: FakeTwilio,
    clock: FakeClock,
) -> None:
    complete_survey(phone)
    clock.advance(3 * 86400)  # a later day
    late = Phone(phone.client, twilio)
    late.send("SURVEY")
    late.send("2")  # roads, then stops answering
    client = as_role("coordinator")
    page = client.get("/dashboard/surveys/community_assessment").get_data(as_text=True)
    assert "Version 1" in page
    assert "<dd>2</dd>" in page and "50%" in page  # 2 responses, 1 completed
    assert "Drinking water" in page and "Roads and transport" in page  # option labels
    assert page.count('<svg class="chart"') >= 8  # one chart per closed question
    listing = client.get("/dashboard/surveys").get_data(as_text=True)
    assert "2 responses" in listing

    everything = client.get("/dashboard/surveys/community_assessment/export.csv")
    rows = list(csv.DictReader(io.StringIO(everything.get_data(as_text=True))))
    assert [r["q_main_issue"] for r in rows] == ["water", "roads"]
    assert rows[0]["complete"] == "yes" and rows[1]["complete"] == "no"
    since = client.get("/dashboard/surveys/community_assessment/export.csv?since=2026-11-03")
    assert (
        'filename="community_assessment-results-from-2026-11-03.csv"'
        in since.headers["Content-Disposition"]
    )
    [later] = list(csv.DictReader(io.StringIO(since.get_data(as_text=True))))
    assert later["phone"] == late.number
    assert client.get("/dashboard/surveys/nope").status_code == 404
    assert client.get("/dashboard/surveys/community_assessment?since=yesterday").status_code == 400
    assert (
        as_role("mobilizer").get("/dashboard/surveys/community_assessment/export.csv").status_code
        == 403
    )


def test_feedback_inbox_answer_and_status(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, phone: Phone
) -> None:
    phone.send("FEEDBACK the bridge in ward 5 is unsafe")
    phone.send("complaint")
    phone.send("Ward 5")
    with runtime.db.read() as session:
        reference = session.scalar(select(Feedback.reference))
    assert reference
    client = as_role("coordinator")
    inbox = client.get("/dashboard/feedback?category=complaint&status=new").get_data(as_text=True)
    assert reference in inbox and "the bridge in ward 5 is unsafe" in inbox
    assert reference not in client.get("/dashboard/feedback?status=closed").get_data(as_text=True)
    token = csrf_token(client, f"/dashboard/feedback/{reference}")
    answered = client.post(
        f"/dashboard/feedback/{reference}/answer",
        data={"csrf_token": token, "text": "An engineer visits on Monday."},
        follow_redirects=True,
    )
    assert "Answer sent." in answered.get_data(as_text=True)
    assert phone.replies() == [f"{reference}: An engineer visits on Monday."]
    client.post(
        f"/dashboard/feedback/{reference}/status", data={"csrf_token": token, "status": "closed"}
    )
    with runtime.db.read() as session:
        row = session.scalar(select(Feedback))
        assert row is not None and (row.status, row.answered_by) == ("closed", "Coord")
    bad = client.post(
        f"/dashboard/feedback/{reference}/status", data={"csrf_token": token, "status": "lost"}
    )
    assert bad.status_code == 400
    assert client.get("/dashboard/feedback/FB-NOPE99").status_code == 404
    assert client.get("/dashboard/feedback/<script>").status_code == 404
    assert client.get("/dashboard/feedback?status=lost").status_code == 400
