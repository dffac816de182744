"""Erasing one person: `bot contacts erase` and the dashboard's erase action.

What goes: the contact rows with that number (real and simulated), their groups, messages
both ways (with broadcast recipient rows and manual replies), status reports, the consent
log, survey responses, feedback, review-queue rows, NLU examples made from their messages,
their lines in work-folder files, their waiting tasks in the job queue. Audit events that
named them keep only a masked number. What stays: a keyed hash of the number if they had
opted out (so the opt-out is still honoured), and their survey answers as anonymous counts
(bot/personal_data/tallies.py). Then the deleted bytes are physically removed where the
database allows it: SQLite overwrites them (secure_delete) and its WAL is truncated;
PostgreSQL's touched tables are vacuumed (its WAL archive and backups keep them until they
rotate: see the README, "Personal data").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import phonenumbers
from huey import Huey
from sqlalchemy import delete, or_, select
from sqlalchemy.engine import make_url
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
    User,
    table_of,
)
from bot.personal_data import optouts
from bot.personal_data.export import audit_conditions
from bot.personal_data.files import FileScrub, live_files, mentions, scrub_folders
from bot.personal_data.jobs import purge_tasks
from bot.personal_data.tallies import fold
from bot.privacy import mask_phone
from bot.settings import PROJECT_ROOT, Settings
from bot.spool import SPOOL, spool_folder

log = logging.getLogger(__name__)

CHUNK = 500
ERASED = "[erased]"
# Tables whose rows an erasure deletes or rewrites: vacuumed afterwards on PostgreSQL.
TOUCHED = (
    "contacts",
    "contact_groups",
    "messages",
    "message_status_events",
    "consent_events",
    "survey_responses",
    "feedback",
    "unanswered_questions",
    "nlu_examples",
    "audit_events",
    "survey_tallies",
)


@dataclass
class ErasureReport:
    """What an erasure removed and kept (no number in it: it is shown and logged)."""

    masked: str
    contact_ids: list[int] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=dict)
    tallied_responses: int = 0
    kept_opt_out: bool = False
    audit_redacted: int = 0
    queue_tasks: int = 0
    files: FileScrub = field(default_factory=FileScrub)
    content_mentions: list[Path] = field(default_factory=list)
    staff_account: bool = False
    physical: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.contact_ids)

    def lines(self) -> list[str]:
        """The report as lines of text, for the command line and the dashboard."""
        out = [f"{self.masked}: {len(self.contact_ids)} contact row(s) erased"]
        rows = ", ".join(f"{name} {n}" for name, n in self.deleted.items() if n)
        out.append(f"deleted rows: {rows or 'none'}")
        out.append(f"survey responses kept as anonymous counts: {self.tallied_responses}")
        out.append(
            "opt-out kept as a keyed hash of the number"
            if self.kept_opt_out
            else "no opt-out to keep"
        )
        if self.audit_redacted:
            out.append(f"audit events redacted: {self.audit_redacted}")
        if self.queue_tasks:
            out.append(f"queued tasks removed: {self.queue_tasks}")
        for path in self.files.changed:
            out.append(f"file rewritten without their lines: {path}")
        for path in self.files.removed:
            out.append(f"file deleted: {path}")
        for path in self.files.too_large:
            out.append(f"file too large to check, check it by hand: {path}")
        for path in self.content_mentions:
            out.append(f"content file has a line equal to their text (not changed): {path}")
        if self.staff_account:
            out.append("a dashboard account has this number: change or remove it separately")
        out.extend(self.physical)
        return out


def phone_forms(phone: str) -> list[str]:
    """The forms a number is written in: E.164, its digits, the national digits."""
    forms = [phone, phone.lstrip("+")]
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return forms
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    digits = "".join(ch for ch in national if ch.isdigit())
    if len(digits) >= 6:
        forms.append(digits)
    return list(dict.fromkeys(forms))


def work_folders(settings: Settings) -> list[Path]:
    """Where the service writes files: var/ (imports, exports, retraining) and build/."""
    return [settings.var_dir, PROJECT_ROOT / "build"]


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for first in range(0, len(values), CHUNK):
        yield values[first : first + CHUNK]


def _delete_in(session: Session, table: Any, column: Any, values: Sequence[Any]) -> int:
    count = 0
    for chunk in _chunks(values):
        result = session.execute(delete(table).where(column.in_(chunk)))
        count += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return count


def _redact(value: Any, forms: Sequence[str], masked: str, texts: Sequence[str]) -> Any:
    """`value` (audit detail) with the number masked and their texts replaced."""
    if isinstance(value, dict):
        return {k: _redact(v, forms, masked, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, forms, masked, texts) for v in value]
    if isinstance(value, str):
        if value.strip() and any(value.strip() in text for text in texts):
            return ERASED
        for form in forms:
            value = value.replace(form, masked)
    return value


def _erase_rows(
    session: Session, settings: Settings, phone: str, actor: str, now: datetime
) -> tuple[ErasureReport, list[int], list[str]]:
    masked = mask_phone(phone)
    report = ErasureReport(masked)
    forms = phone_forms(phone)
    contacts = session.execute(
        select(Contact.id, Contact.simulated, Contact.opted_out).where(Contact.phone == phone)
    ).all()
    ids = [int(c.id) for c in contacts]
    report.contact_ids = ids
    messages = session.execute(
        select(Message.id, Message.provider_sid, Message.body, Message.direction).where(
            Message.contact_id.in_(ids)
        )
    ).all()
    message_ids = [int(m.id) for m in messages]
    sids = [m.provider_sid for m in messages if m.provider_sid]
    texts = [m.body for m in messages if m.direction == "in" and m.body and m.body.strip()]
    examples: list[str] = []
    for chunk in _chunks(message_ids):
        examples += session.scalars(
            select(NluExample.text).where(NluExample.source_message_id.in_(chunk))
        ).all()
    responses = session.scalars(select(SurveyResponse).where(SurveyResponse.contact_id.in_(ids)))
    report.tallied_responses = fold(session, responses, settings.zone, whole=True)

    deleted: dict[str, int] = {}

    deleted["nlu_examples"] = _delete_in(
        session, table_of(NluExample), NluExample.source_message_id, message_ids
    )
    unanswered = table_of(UnansweredQuestion)
    deleted["unanswered_questions"] = _delete_in(
        session, unanswered, UnansweredQuestion.contact_id, ids
    ) + _delete_in(session, unanswered, UnansweredQuestion.message_id, message_ids)
    deleted["feedback"] = _delete_in(session, table_of(Feedback), Feedback.contact_id, ids)
    deleted["consent_events"] = _delete_in(
        session, table_of(ConsentEvent), ConsentEvent.contact_id, ids
    )
    events = table_of(MessageStatusEvent)
    deleted["message_status_events"] = _delete_in(
        session, events, MessageStatusEvent.message_id, message_ids
    ) + _delete_in(session, events, MessageStatusEvent.provider_sid, sids)
    deleted["survey_responses"] = _delete_in(
        session, table_of(SurveyResponse), SurveyResponse.contact_id, ids
    )
    # One statement per chunk of contacts: replies point at the inbound messages they answer,
    # and both go together (foreign keys are checked at the end of the statement).
    deleted["messages"] = _delete_in(session, table_of(Message), Message.contact_id, ids)
    deleted["contact_groups"] = _delete_in(
        session, table_of(ContactGroup), ContactGroup.contact_id, ids
    )
    deleted["contacts"] = _delete_in(session, table_of(Contact), Contact.id, ids)
    report.deleted = deleted

    if any(c.opted_out and not c.simulated for c in contacts):
        optouts.keep(session, settings.phone_key, phone, now)
        report.kept_opt_out = True

    for event in session.scalars(select(AuditEvent).where(audit_conditions(phone, ids))):
        if event.actor in forms:
            event.actor = masked
        if event.detail is not None:
            event.detail = _redact(event.detail, forms, masked, texts)
        report.audit_redacted += 1

    report.staff_account = (
        session.scalar(select(User.id).where(or_(*(User.phone == f for f in forms)))) is not None
    )
    session.add(
        AuditEvent(
            actor=actor[:200],
            action="contact_erased",
            detail={
                "contact_ids": ids,
                "phone": masked,
                "kept_opt_out": report.kept_opt_out,
                "deleted": {k: v for k, v in deleted.items() if v},
                "tallied_responses": report.tallied_responses,
            },
            created_at=now,
        )
    )
    return report, message_ids, examples


def erase(
    db: Database,
    settings: Settings,
    phone: str,
    actor: str,
    now: datetime,
    *,
    huey: Huey | None = None,
    folders: Sequence[Path] | None = None,
    content_dirs: Sequence[Path] | None = None,
    vacuum: bool = True,
) -> ErasureReport:
    """Erases everything about `phone` (E.164) and says what it did.

    Args:
        db: the database.
        settings: for the time zone, the opt-out hash key and the work folders.
        phone: the number, in E.164.
        actor: who asked (recorded in the audit log with the masked number).
        now: the time of the erasure.
        huey: the job queue to purge waiting tasks from (None: not purged).
        folders: work folders to scrub (default: var/ and build/).
        content_dirs: project content checked for their texts, never changed (data/).
        vacuum: physically remove the deleted rows (SQLite WAL truncation, PostgreSQL VACUUM).
    """
    with db.write() as session:
        report, message_ids, examples = _erase_rows(session, settings, phone, actor, now)
    if huey is not None:
        try:
            report.queue_tasks = purge_tasks(huey, report.contact_ids, message_ids)
        except Exception:
            log.exception("could not purge the job queue; its tasks hold ids only")
            report.physical.append("job queue: could not be purged (see the log)")
    # The web's spool (bot/spool.py) is written and emptied by live processes; its lines
    # are in the database within milliseconds, where the erasure finds them.
    skip = live_files(
        [*_database_files(db.url), settings.queue_path, spool_folder(settings.var_dir) / SPOOL]
    )
    report.files = scrub_folders(
        work_folders(settings) if folders is None else folders,
        phone_forms(phone),
        examples,
        skip,
    )
    report.content_mentions = mentions(
        [PROJECT_ROOT / "data"] if content_dirs is None else content_dirs, examples
    )
    if vacuum:
        report.physical.append(physical_erase(db))
    log.info(
        "erased contact(s) %s (%s): %s",
        report.contact_ids,
        report.masked,
        {k: v for k, v in report.deleted.items() if v},
    )
    return report


def _database_files(url: str) -> list[Path]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return [Path(str(parsed.database))]
    return []


def physical_erase(db: Database, attempts: int = 50) -> str:
    """Removes deleted rows from the database files as far as the database allows.

    SQLite: every connection runs with secure_delete (deleted content is overwritten with
    zeros); the WAL, which still holds earlier page images, is checkpointed and truncated.
    PostgreSQL: VACUUM on the touched tables (dead rows become free space; the WAL archive
    and backups keep them until they rotate).
    """
    if db.is_sqlite:
        for _ in range(attempts):
            raw = db.engine.raw_connection()
            try:
                busy = raw.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA wal_checkpoint(TRUNCATE)"
                ).fetchone()[0]
            finally:
                raw.close()
            if not busy:
                return "sqlite: deleted rows overwritten (secure_delete); WAL checkpointed, emptied"
            time.sleep(0.1)
        return "sqlite: the WAL is busy (a long reader?); run `bot contacts erase` again later"
    try:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in TOUCHED:
                conn.exec_driver_sql(f'VACUUM "{name}"')
    except Exception as exc:
        log.warning("VACUUM after erasure failed: %s", type(exc).__name__)
        return f"postgresql: VACUUM failed ({type(exc).__name__}); run VACUUM by hand"
    return (
        "postgresql: touched tables vacuumed; WAL archives and backups keep old rows "
        "until they rotate"
    )
