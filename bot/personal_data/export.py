"""Everything stored about one person, for `bot contacts export` and the dashboard.

One phone number can have two contact rows (a real one and one the simulator made); both
are exported. The JSON form is one document: `{"phone", "exported_at", "tables": {name:
[rows]}}`. The CSV form is a zip with one CSV file per table (cells that a spreadsheet
would read as a formula are neutralized, as in the survey export).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

from sqlalchemy import Table, Text, cast, or_, select
from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.db.models import (
    AuditEvent,
    ConsentEvent,
    Contact,
    ContactGroup,
    Feedback,
    Message,
    MessageStatusEvent,
    NluExample,
    SurveyResponse,
    UnansweredQuestion,
    table_of,
)
from bot.privacy import mask_phone
from bot.surveys import PHONE, neutralize

# The tables of an export, in the order a reader meets them.
TABLES = (
    "contacts",
    "contact_groups",
    "messages",
    "message_status_events",
    "consent_events",
    "survey_responses",
    "feedback",
    "unanswered_questions",
    "nlu_examples",
    "handoff",
    "audit_events",
)


@dataclass(frozen=True)
class PersonalData:
    """One person's rows, table by table, as plain values."""

    phone: str
    exported_at: datetime
    tables: dict[str, list[dict[str, Any]]]

    @property
    def contact_ids(self) -> list[int]:
        return [int(row["id"]) for row in self.tables["contacts"]]

    @property
    def found(self) -> bool:
        return bool(self.tables["contacts"])

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {name: len(rows) for name, rows in self.tables.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _rows(session: Session, table: Table, *conditions: Any) -> list[dict[str, Any]]:
    query = select(table).where(*conditions).order_by(*table.primary_key.columns)
    return [
        {key: _plain(value) for key, value in row._mapping.items()}
        for row in session.execute(query)
    ]


def audit_conditions(phone: str, contact_ids: Collection[int]) -> Any:
    """Audit events about the person: done by their number, naming it, or naming their id."""
    detail = cast(AuditEvent.detail, Text)
    conditions = [AuditEvent.actor == phone, detail.contains(phone)]
    for contact_id in contact_ids:
        conditions.append(detail.contains(f'"contact_id": {contact_id},'))
        conditions.append(detail.contains(f'"contact_id": {contact_id}}}'))
    return or_(*conditions)


def collect(db: Database, phone: str, now: datetime) -> PersonalData:
    """Reads every row about `phone` (E.164), real and simulated contact alike."""

    with db.read() as session:
        contacts = _rows(session, table_of(Contact), Contact.phone == phone)
        ids = [int(c["id"]) for c in contacts]
        tables: dict[str, list[dict[str, Any]]] = {"contacts": contacts}
        tables["contact_groups"] = _rows(
            session, table_of(ContactGroup), ContactGroup.contact_id.in_(ids)
        )
        tables["messages"] = _rows(session, table_of(Message), Message.contact_id.in_(ids))
        message_ids = [int(m["id"]) for m in tables["messages"]]
        sids = [m["provider_sid"] for m in tables["messages"] if m["provider_sid"]]
        tables["message_status_events"] = _rows(
            session,
            table_of(MessageStatusEvent),
            or_(
                MessageStatusEvent.message_id.in_(message_ids),
                MessageStatusEvent.provider_sid.in_(sids),
            ),
        )
        tables["consent_events"] = _rows(
            session, table_of(ConsentEvent), ConsentEvent.contact_id.in_(ids)
        )
        tables["survey_responses"] = _rows(
            session, table_of(SurveyResponse), SurveyResponse.contact_id.in_(ids)
        )
        tables["feedback"] = _rows(session, table_of(Feedback), Feedback.contact_id.in_(ids))
        tables["unanswered_questions"] = _rows(
            session, table_of(UnansweredQuestion), UnansweredQuestion.contact_id.in_(ids)
        )
        tables["nlu_examples"] = _rows(
            session, table_of(NluExample), NluExample.source_message_id.in_(message_ids)
        )
        tables["handoff"] = [
            {
                "contact_id": m["contact_id"],
                "message_id": m["id"],
                "by": (m["extra"] or {}).get("by"),
                "status": m["status"],
                "created_at": m["created_at"],
            }
            for m in tables["messages"]
            if m["kind"] == "manual_reply"
        ]
        tables["audit_events"] = (
            _rows(session, table_of(AuditEvent), audit_conditions(phone, ids)) if ids else []
        )
    return PersonalData(phone, now, {name: tables[name] for name in TABLES})


def to_json(data: PersonalData) -> str:
    """The export as one JSON document."""
    document = {
        "phone": data.phone,
        "exported_at": data.exported_at.isoformat(),
        "tables": data.tables,
    }
    return json.dumps(document, ensure_ascii=False, indent=2, default=str)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    # Our own E.164 numbers keep their "+" readable; anything else formula-like is neutralized.
    return text if PHONE.match(text) else neutralize(text)


def table_csv(rows: list[dict[str, Any]]) -> str:
    """One table as CSV text (a header row, then one row per record)."""
    out = io.StringIO()
    writer = csv.writer(out)
    columns = list(rows[0]) if rows else []
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def write_csv_zip(data: PersonalData, out: IO[bytes]) -> None:
    """The export as a zip of CSV files, one per table (empty tables included)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in TABLES:
            archive.writestr(f"{name}.csv", table_csv(data.tables[name]))


def record_export(db: Database, data: PersonalData, actor: str, fmt: str, now: datetime) -> None:
    """Audits an export: who, which contacts, which format (the number masked)."""
    with db.write() as session:
        session.add(
            AuditEvent(
                actor=actor[:200],
                action="contact_exported",
                detail={
                    "contact_ids": data.contact_ids,
                    "phone": mask_phone(data.phone),
                    "format": fmt,
                    "rows": sum(data.counts().values()),
                },
                created_at=now,
            )
        )
