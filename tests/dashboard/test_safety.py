"""Attacker-controlled text (message bodies, names) is escaped on every page and neutralized
in every CSV; bad input is a clear 4xx, never a 500."""

from __future__ import annotations

import csv
import io
import re

from flask import Flask

from bot.runtime import Runtime
from dashboard.charts import Series, bar_chart, column_chart
from testkit.fake_rasa import FakeRasa
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.conftest import Accounts, Site
from tests.dashboard.support import contact_id, signed_in
from tests.support.phone import Phone

SCRIPT = '<script>alert("owned")</script>'
IMAGE = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("http://evil.example","click")'


def _raw_markup_absent(page: str) -> None:
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    # What an attacker wrote is shown as text.
    assert "&lt;script&gt;" in page or "&lt;img" in page


def test_payloads_sent_by_sms_are_text_on_every_page_and_inert_in_csv(
    nlu_app: Flask,
    nlu_runtime: Runtime,
    nlu_accounts: Accounts,
    member: Phone,
    rasa: FakeRasa,
    twilio: FakeTwilio,
) -> None:
    # A question the model does not know (into the review queue), feedback, a survey answer.
    member.send(f"{SCRIPT} what is this {IMAGE}")
    member.send(f"FEEDBACK {SCRIPT} the tap is broken")
    member.send("complaint")
    member.send(IMAGE)
    member.send("SURVEY")
    member.send("7")  # "something else": a free-text answer follows
    member.send(FORMULA)
    whatsapp = Phone(member.client, twilio, whatsapp=True)
    whatsapp.send(FORMULA, ProfileName=SCRIPT)
    contact = contact_id(nlu_runtime.db, member.number)
    named = contact_id(nlu_runtime.db, whatsapp.number)
    client = signed_in(nlu_app, nlu_runtime.db, nlu_accounts.admin)
    pages = [
        "/dashboard/",
        "/dashboard/conversations",
        "/dashboard/conversations?q=what+is+this",
        f"/dashboard/conversations/{contact}",
        f"/dashboard/conversations/{named}",
        "/dashboard/contacts",
        f"/dashboard/contacts/{named}",
        "/dashboard/feedback",
        "/dashboard/nlu",
        "/dashboard/surveys/community_assessment",
        "/dashboard/audit",
    ]
    feedback_page = client.get("/dashboard/feedback").get_data(as_text=True)
    reference = re.search(r"FB-[A-Z0-9]+", feedback_page)
    assert reference
    pages.append(f"/dashboard/feedback/{reference.group(0)}")
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        page = response.get_data(as_text=True)
        assert "<script>alert" not in page, path
        assert "<img src=x" not in page, path
    for path in (f"/dashboard/conversations/{contact}", "/dashboard/nlu", pages[-1]):
        _raw_markup_absent(client.get(path).get_data(as_text=True))
    assert "&lt;script&gt;" in client.get("/dashboard/contacts").get_data(as_text=True)

    export = client.get("/dashboard/surveys/community_assessment/export.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    [row] = rows
    assert row["q_main_issue_other"] == "'" + FORMULA
    assert row["phone"] == member.number  # a real number keeps its "+"


def test_charts_escape_their_labels() -> None:
    chart = str(bar_chart([(SCRIPT, 3.0), ("ok", 1.0)], title=IMAGE))
    assert "<script>" not in chart and "<img" not in chart
    assert "&lt;script&gt;" in chart
    columns = str(column_chart([SCRIPT, "b"], [Series(IMAGE, '"><x', [1, 2])], title="t"))
    assert "<script>" not in columns and "<img" not in columns and '"><x' not in columns


def test_a_contact_file_full_of_payloads_previews_as_text(sqlite_site: Site) -> None:
    client = sqlite_site.client("coordinator")
    token = re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"',
        client.get("/dashboard/contacts/import").get_data(as_text=True),
    )
    assert token
    data = f"phone,name,district\n{SCRIPT},x,y\n9812345678,{SCRIPT},{IMAGE}\n".encode()
    response = client.post(
        "/dashboard/contacts/import",
        data={"csrf_token": token.group(1), "channel": "sms", "file": (io.BytesIO(data), "c.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    _raw_markup_absent(response.get_data(as_text=True))
