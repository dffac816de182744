"""Export: everything stored about one person, as JSON and as a zip of CSV files."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import main
from bot.core.messages import Channel, Inbound
from bot.db.models import AuditEvent, Contact, ContactGroup
from bot.personal_data.export import TABLES, collect, table_csv
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.support.phone import Phone

FORMULA = '=HYPERLINK("http://evil.example")'


def talk(client, twilio: FakeTwilio, runtime: Runtime) -> Phone:  # type: ignore[no-untyped-def]
    phone = Phone(client, twilio)
    phone.send("hi")
    phone.send("SURVEY")
    phone.send("7")
    phone.send(f" {FORMULA}")
    phone.send("QUIT")
    phone.send("FEEDBACK the well is dry")
    phone.send("complaint")
    phone.send("Ward 5")
    phone.send("STOP")
    with runtime.db.write() as s:
        contact_id = s.scalars(select(Contact.id).where(Contact.phone == phone.number)).one()
        s.add(ContactGroup(contact_id=contact_id, group_name="ward-5"))
    runtime.accept(
        Inbound(Channel.SMS, phone.number, "from the simulator", provider_id="SMsim000export"),
        simulated=True,
    )
    return phone


def test_json_export_has_every_table_of_the_person_and_no_one_else(
    client,
    twilio: FakeTwilio,
    runtime: Runtime,  # type: ignore[no-untyped-def]
) -> None:
    phone = talk(client, twilio, runtime)
    Phone(client, twilio).send("hi from someone else")
    data = collect(runtime.db, phone.number, runtime.clock())
    assert list(data.tables) == list(TABLES)
    counts = data.counts()
    assert counts["contacts"] == 2  # the real contact and the simulator's
    assert {c["simulated"] for c in data.tables["contacts"]} == {True, False}
    assert counts["contact_groups"] == 1 and counts["feedback"] == 1
    assert counts["survey_responses"] == 2  # the survey and the feedback flow
    assert counts["consent_events"] == 1  # STOP
    assert counts["unanswered_questions"] == 0  # no NLU here: the menu answers
    bodies = [m["body"] for m in data.tables["messages"]]
    assert "hi" in bodies and "from the simulator" in bodies
    assert {m["direction"] for m in data.tables["messages"]} == {"in", "out"}
    assert "hi from someone else" not in bodies
    assert all(m["status"] for m in data.tables["messages"])
    document = json.loads(
        CliRunner()
        .invoke(main, ["contacts", "export", phone.number], env=_env(runtime))
        .stdout.split("\nexported:")[0]
    )
    assert document["phone"] == phone.number
    assert len(document["tables"]["messages"]) == counts["messages"]


def _env(runtime: Runtime) -> dict[str, str]:
    s = runtime.settings
    return {
        "DATABASE_URL": s.database_url,
        "VAR_DIR": str(s.var_dir),
        "SECRET_KEY": s.secret_key,
    }


def test_csv_export_is_a_zip_of_tables_with_formulas_neutralized_and_audited(
    client,
    twilio: FakeTwilio,
    runtime: Runtime,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    phone = talk(client, twilio, runtime)
    out = tmp_path / "person.zip"
    national = phone.number.removeprefix("+977")
    result = CliRunner().invoke(
        main,
        ["contacts", "export", national, "--format", "csv", "--out", str(out), "--by", "dpo"],
        env=_env(runtime),
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == [f"{name}.csv" for name in TABLES]
        contacts = list(csv.DictReader(io.StringIO(archive.read("contacts.csv").decode())))
        messages = list(csv.DictReader(io.StringIO(archive.read("messages.csv").decode())))
        responses = archive.read("survey_responses.csv").decode()
    assert {c["phone"] for c in contacts} == {phone.number}  # E.164 kept readable
    assert any(m["body"] == f"' {FORMULA}" for m in messages)  # leading blank: still quoted
    assert "HYPERLINK" in responses  # inside the answers' JSON cell, which starts with {
    with runtime.db.read() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "contact_exported"))
    assert event.actor == "dpo" and event.detail is not None
    assert event.detail["format"] == "csv" and len(event.detail["contact_ids"]) == 2
    assert phone.number not in json.dumps(event.detail)  # masked
    unknown = CliRunner().invoke(main, ["contacts", "export", "+9779800099999"], env=_env(runtime))
    assert unknown.exit_code == 1 and "no contact" in unknown.output


def test_table_csv_neutralizes_every_formula_like_cell() -> None:
    rows = [{"a": "=1+1", "b": {"x": "@y"}, "c": None, "d": True, "e": "+9779812345678"}]
    text = table_csv(rows)
    assert text.splitlines()[1] == '\'=1+1,"{""x"": ""@y""}",,true,+9779812345678'
    assert table_csv([]) == "\r\n"
