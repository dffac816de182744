"""The contact page's personal-data actions: export (staff), erase (admins, typed number)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select

from bot.db.models import AuditEvent, Contact, KeptOptOut
from bot.runtime import Runtime
from dashboard.views.personal_data import VACUUMS
from tests.dashboard.support import contact_id, csrf_token, tag
from tests.support.phone import Phone


def test_staff_export_json_and_csv_zip_and_mobilizers_cannot(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, phone: Phone
) -> None:
    phone.send("hi")
    contact = contact_id(runtime.db, phone.number)
    tag(runtime.db, contact, "ward-3")
    coordinator = as_role("coordinator")
    page = coordinator.get(f"/dashboard/contacts/{contact}").get_data(as_text=True)
    assert "export as JSON" in page and "erase" not in page.split("Personal data")[1]
    got = coordinator.get(f"/dashboard/contacts/{contact}/export")
    assert got.status_code == 200 and got.headers["Cache-Control"] == "no-store"
    assert "attachment" in got.headers["Content-Disposition"]
    document = json.loads(got.data)
    assert document["phone"] == phone.number and document["tables"]["messages"]
    zipped = coordinator.get(f"/dashboard/contacts/{contact}/export?format=csv")
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as archive:
        assert "messages.csv" in archive.namelist()
    assert coordinator.get(f"/dashboard/contacts/{contact}/export?format=xml").status_code == 400
    # A mobilizer sees this contact (their group) but exports nothing.
    assert as_role("mobilizer").get(f"/dashboard/contacts/{contact}/export").status_code == 403
    assert as_role("anonymous").get(f"/dashboard/contacts/{contact}/export").status_code == 302
    with runtime.db.read() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "contact_exported")).all()
    assert [e.detail["format"] for e in events if e.detail] == ["json", "csv"]
    assert {e.actor for e in events} == {"Coord"}


def test_only_admins_erase_and_only_with_the_number_typed(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, phone: Phone
) -> None:
    phone.send("hi")
    phone.send("STOP")
    contact = contact_id(runtime.db, phone.number)
    path = f"/dashboard/contacts/{contact}/erase"
    coordinator = as_role("coordinator")
    assert coordinator.get(path).status_code == 403
    token = csrf_token(coordinator, f"/dashboard/contacts/{contact}")
    assert (
        coordinator.post(path, data={"csrf_token": token, "phone": phone.number}).status_code == 403
    )

    admin = as_role("admin")
    page = admin.get(path).get_data(as_text=True)
    assert "There is no undo" in page and "Type the number" in page
    token = csrf_token(admin, path)
    wrong = admin.post(path, data={"csrf_token": token, "phone": "+9779800000000"})
    assert wrong.status_code == 400 and "nothing was erased" in wrong.get_data(as_text=True)
    assert admin.post(path, data={"phone": phone.number}).status_code == 400  # no CSRF token
    with runtime.db.read() as s:
        assert s.get(Contact, contact) is not None

    national = phone.number.removeprefix("+977")  # typed as people write it
    done = admin.post(path, data={"csrf_token": token, "phone": national}, follow_redirects=True)
    for thread in VACUUMS:  # PostgreSQL: the VACUUM runs after the answer
        thread.join(timeout=30)
    assert done.status_code == 200
    shown = done.get_data(as_text=True)
    assert "Erased +97798" in shown and phone.number not in shown
    with runtime.db.read() as s:
        assert s.get(Contact, contact) is None
        assert s.scalar(select(KeptOptOut.phone_hash)) is not None
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "contact_erased"))
    assert event.actor == "Admin" and event.detail is not None
    assert event.detail["contact_ids"] == [contact]
    assert phone.number not in json.dumps(event.detail) and "*****" in event.detail["phone"]
    assert admin.get(path).status_code == 404
