"""Contacts: CSV import with a preview of bad rows, groups and location, the consent log."""

from __future__ import annotations

import io
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from bot.db.models import ConsentEvent, Contact, ContactGroup
from bot.runtime import Runtime
from dashboard.contacts_import import read_rows
from dashboard.views.contacts import _groups_after
from tests.dashboard.conftest import Site
from tests.dashboard.support import contact_id, csrf_token
from tests.support.builders import add_contact
from tests.support.phone import Phone

FILE = """\ufeffPhone,Name,Language,Channel,District,Ward,Groups
9812345678,Sita,ne,whatsapp,Kaski,3,ward-3;mothers
+977 981-234-5679,Ram,english,,Kaski,4,ward-4
not a number,Hari,en,sms,,,
981234567801234567890,Gita,,,,,
9812345678,Sita again,ne,,,,
9812345680,Maya,fr,,,,
9812345681,Bad group,,,,,"<b>"
,,,,,,
9811111111,Known,ne,sms,Lalitpur,7,ward-3
""".encode()


def upload(client: FlaskClient, data: bytes, **fields: str):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/dashboard/contacts/import")
    return client.post(
        "/dashboard/contacts/import",
        data={"csrf_token": token, "channel": "sms", "file": (io.BytesIO(data), "c.csv"), **fields},
        content_type="multipart/form-data",
    )


def test_read_rows_checks_every_row() -> None:
    good, bad = read_rows(FILE, "NP", "sms")
    assert [(r.line, r.phone, r.language, r.channel) for r in good] == [
        (2, "+9779812345678", "ne", "whatsapp"),
        (3, "+9779812345679", "en", "sms"),
        (10, "+9779811111111", "ne", "sms"),
    ]
    assert good[0].groups == ("ward-3", "mothers") and good[0].district == "Kaski"
    assert [(b.line, b.reason) for b in bad] == [
        (4, "not a phone number"),
        (5, "not a phone number"),
        (6, "the same number as line 2"),
        (7, "unknown language 'fr' (en or ne)"),
        (8, "'<b>' is not a group name (letters, digits, - and _)"),
    ]


def test_import_previews_then_saves_and_never_touches_consent(
    as_role: Callable[[str], FlaskClient], runtime: Runtime, phone: Phone
) -> None:
    known = Phone(phone.client, phone.twilio, "+9779811111111")
    known.send("STOP")  # opted out before the import
    client = as_role("coordinator")
    preview = upload(client, FILE, group="import-1")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "<strong>2</strong> new contacts" in page and "<strong>1</strong> already known" in page
    assert "the same number as line 2" in page and "not a phone number" in page
    with runtime.db.read() as session:
        assert session.scalar(select(Contact).where(Contact.phone == "+9779812345678")) is None
    token = csrf_token(client, "/dashboard/contacts")
    refused = client.post(
        "/dashboard/contacts/import/confirm", data={"csrf_token": token}, follow_redirects=True
    )
    assert "agreed to receive messages" in refused.get_data(as_text=True)
    done = client.post(
        "/dashboard/contacts/import/confirm",
        data={"csrf_token": token, "consent": "y"},
        follow_redirects=True,
    )
    assert "Imported: 2 new, 1 updated, 5 rows skipped." in done.get_data(as_text=True)
    with runtime.db.read() as session:
        sita = session.scalar(select(Contact).where(Contact.phone == "+9779812345678"))
        assert sita is not None
        assert (sita.profile_name, sita.channel, sita.language, sita.ward) == (
            "Sita",
            "whatsapp",
            "ne",
            "3",
        )
        groups = set(
            session.scalars(
                select(ContactGroup.group_name).where(ContactGroup.contact_id == sita.id)
            )
        )
        assert groups == {"ward-3", "mothers", "import-1"}
        reasons = session.scalars(
            select(ConsentEvent.reason).where(ConsentEvent.contact_id == sita.id)
        ).all()
        assert reasons == ["import"]
        again = session.scalar(select(Contact).where(Contact.phone == "+9779811111111"))
        assert again is not None and again.opted_out and again.district == "Lalitpur"
    # The upload is used once.
    again_response = client.post(
        "/dashboard/contacts/import/confirm", data={"csrf_token": token, "consent": "y"}
    )
    assert again_response.status_code == 400
    detail = client.get(f"/dashboard/contacts/{contact_id(runtime.db, known.number)}")
    text = detail.get_data(as_text=True)
    assert "opted out" in text and "keyword" in text  # the consent log shows the STOP


def test_files_that_are_not_contacts_are_a_400(sqlite_site: Site) -> None:
    client = sqlite_site.client("coordinator")
    for data, reason in (
        (b"\xff\xfe\x00binary", "not UTF-8"),
        (b"name,ward\nSita,3\n", "at least"),
        (b"", "empty"),
    ):
        response = upload(client, data)
        assert response.status_code == 400
        assert reason in response.get_data(as_text=True)
    assert sqlite_site.client("mobilizer").get("/dashboard/contacts/import").status_code == 403


def test_groups_a_mobilizer_may_change() -> None:
    mine = frozenset({"ward-3"})
    assert _groups_after({"ward-3", "mothers"}, {"ward-3", "mothers"}, False, mine) == {
        "ward-3",
        "mothers",
    }
    # Removing someone else's group from the form does nothing.
    assert _groups_after({"ward-3", "mothers"}, {"ward-3"}, False, mine) == {"ward-3", "mothers"}
    assert "only add your own groups" in str(
        _groups_after({"ward-3"}, {"ward-3", "x"}, False, mine)
    )
    assert "Keep at least one" in str(_groups_after({"ward-3"}, set(), False, mine))
    assert _groups_after({"a"}, {"b"}, True, frozenset()) == {"b"}


def test_editing_location_and_groups(
    as_role: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    contact = add_contact(runtime.db, groups=("ward-3", "mothers"))
    client = as_role("mobilizer")
    token = csrf_token(client, f"/dashboard/contacts/{contact}")
    saved = client.post(
        f"/dashboard/contacts/{contact}",
        data={"csrf_token": token, "district": "Kaski", "ward": "5", "groups": "ward-3"},
        follow_redirects=True,
    )
    assert "Saved." in saved.get_data(as_text=True)
    refused = client.post(
        f"/dashboard/contacts/{contact}",
        data={"csrf_token": token, "district": "Other", "groups": "ward-3, ward-9"},
        follow_redirects=True,
    )
    assert "only add your own groups" in refused.get_data(as_text=True)
    too_long = client.post(
        f"/dashboard/contacts/{contact}", data={"csrf_token": token, "district": "x" * 65}
    )
    assert too_long.status_code == 400
    with runtime.db.read() as session:
        row = session.get(Contact, contact)
        assert row is not None and (row.district, row.ward) == ("Kaski", "5")
        groups = set(
            session.scalars(
                select(ContactGroup.group_name).where(ContactGroup.contact_id == contact)
            )
        )
    assert groups == {"ward-3", "mothers"}
    listing = client.get("/dashboard/contacts?group=ward-3&district=Kaski").get_data(as_text=True)
    assert f"/dashboard/contacts/{contact}" in listing
    assert client.get("/dashboard/contacts?group=ward-9").status_code == 400


def _multipart(fields: dict[str, object]) -> dict[str, object]:
    """A multipart body built in memory (the test client spools big ones to a temporary file
    it never closes)."""
    from werkzeug.test import encode_multipart

    boundary, body = encode_multipart(fields)  # type: ignore[arg-type]
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def _file(data: bytes) -> FileStorage:
    return FileStorage(io.BytesIO(data), filename="c.csv", content_type="text/csv")


def _big_upload(client: FlaskClient, data: bytes):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/dashboard/contacts/import")
    fields = {"csrf_token": token, "channel": "sms", "file": _file(data)}
    return client.post("/dashboard/contacts/import", **_multipart(fields))  # type: ignore[arg-type]


def _csv_of_size(size: int) -> bytes:
    """A contacts file of about `size` bytes (valid rows, long names)."""
    rows = [b"phone,name"]
    n = 0
    while sum(len(r) + 1 for r in rows) < size:
        rows.append(f"98{n:08d},{'N' * 150}".encode())
        n += 1
    return b"\n".join(rows) + b"\n"


def test_the_import_takes_files_up_to_its_own_limit_not_the_webhooks(sqlite_site: Site) -> None:
    from bot.app import MAX_REQUEST_BYTES
    from dashboard.contacts_import import MAX_BYTES

    client = sqlite_site.client("coordinator")
    # Bigger than the application's limit (sized for webhooks), well within the import's.
    data = _csv_of_size(4 * MAX_REQUEST_BYTES)
    accepted = _big_upload(client, data)
    assert accepted.status_code == 200, accepted.status_code
    assert b"Import" in accepted.data
    # Just over the import's own limit: the import says so.
    over = _big_upload(client, b"phone\n" + b"9812345678\n" * (MAX_BYTES // 11 + 10))
    assert over.status_code == 400 and b"larger than 5 MB" in over.data
    # Far over it: a 413 that names the limit, never a 500.
    huge = _big_upload(client, b"phone\n" + b"9812345678\n" * (6 * 1024 * 1024 // 11))
    assert huge.status_code == 413
    assert b"a contacts file may have at most 5 MB" in huge.data
    # Signed out, the webhooks' limit applies: big bodies are not parsed for anyone.
    anonymous = sqlite_site.client("anonymous").post(
        "/dashboard/contacts/import",
        **_multipart({"file": _file(data)}),  # type: ignore[arg-type]
    )
    assert anonymous.status_code == 413
    # Any other form over the application's limit: a 413 with the reason.
    token = csrf_token(client)
    big_reply = client.post(
        "/dashboard/contacts/1",
        data={"csrf_token": token, "district": "x" * (MAX_REQUEST_BYTES + 1)},
    )
    assert big_reply.status_code == 413 and b"at most 256 KB" in big_reply.data
