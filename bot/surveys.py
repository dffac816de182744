"""Surveys in the database: version registration, results as CSV, summaries.

The flow engine never touches the database; this module is the store's side of it.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.db.database import Database
from bot.db.models import Contact, SurveyResponse, SurveyTally, SurveyVersion, utcnow
from flows.engine import ACTIVE, COMPLETED, DEFAULT_TTL
from flows.registry import FlowBook, StoredVersion
from flows.schema import Flow, FlowFiles


def _stored(db: Database) -> list[StoredVersion]:
    with db.read() as session:
        rows = session.execute(select(SurveyVersion).order_by(SurveyVersion.id)).scalars()
        return [StoredVersion(r.survey_key, r.version, r.digest, r.definition) for r in rows]


def read_book(db: Database, files: FlowFiles) -> FlowBook:
    """The flows labelled against stored versions, without storing anything."""
    return FlowBook.from_files(files, _stored(db))


def sync_versions(db: Database, files: FlowFiles) -> FlowBook:
    """Labels the current definitions against the stored versions and stores new ones.

    Two processes starting at once may both try to store a new version; the loser reads
    the winner's label and uses it.
    """
    for _ in range(3):
        book = FlowBook.from_files(files, _stored(db))
        known = {(s.key, s.digest) for s in _stored(db)}
        new = [f for f in book.current.values() if (f.key, f.digest) not in known]
        if not new:
            return book
        try:
            with db.write() as session:
                for flow in new:
                    session.add(
                        SurveyVersion(
                            survey_key=flow.key,
                            kind=flow.kind,
                            version=flow.version,
                            digest=flow.digest,
                            definition=flow.source,
                            created_at=utcnow(),
                        )
                    )
        except IntegrityError:
            continue
    return FlowBook.from_files(files, _stored(db))


def neutralize(cell: str) -> str:
    """Keeps a spreadsheet from reading a cell as a formula (CSV injection).

    Spreadsheets skip leading spaces (and other blanks) before `= + - @`, so " =1+1" is a
    formula too; a cell starting with a tab, CR or LF is quoted as well.
    """
    if cell and (cell[0] in "\t\r\n" or cell.lstrip().startswith(("=", "+", "-", "@"))):
        return "'" + cell
    return cell


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class ResultColumns:
    """Question columns for every version of a survey, in question order."""

    questions: list[str]

    @classmethod
    def for_survey(cls, db: Database, key: str, current: Flow | None) -> ResultColumns:
        ordered: list[str] = [q.id for q in current.questions] if current else []
        with db.read() as session:
            definitions = session.execute(
                select(SurveyVersion.definition)
                .where(SurveyVersion.survey_key == key)
                .order_by(SurveyVersion.id)
            ).scalars()
            for definition in definitions:
                for question in definition.get("questions") or []:
                    qid = str(question.get("id"))
                    if qid not in ordered:
                        ordered.append(qid)
        return cls(ordered)


FIXED_COLUMNS = [
    "response_id",
    "survey",
    "version",
    "phone",
    "channel",
    "language",
    "status",
    "complete",
    "started_at",
    "updated_at",
    "completed_at",
]


# Question columns are prefixed so that a question id never collides with a fixed column.
QUESTION_PREFIX = "q_"
PHONE = re.compile(r"^\+[0-9]{6,15}$")


def status_now(status: str, updated_at: datetime, now: datetime, ttl: timedelta) -> str:
    """An active response nobody has touched for longer than the session lifetime is expired."""
    if status == ACTIVE and now - updated_at > ttl:
        return "expired"
    return status


def iter_results(
    db: Database,
    key: str,
    columns: ResultColumns,
    since: datetime | None = None,
    now: datetime | None = None,
    ttl: timedelta = DEFAULT_TTL,
    batch: int = 500,
) -> Iterator[list[str]]:
    """One CSV row per response, streamed from the database (constant memory)."""
    now = now or utcnow()
    r = SurveyResponse.__table__.c
    query = (
        select(
            r.id,
            r.survey_key,
            r.version,
            Contact.__table__.c.phone,
            r.channel,
            r.language,
            r.status,
            r.started_at,
            r.updated_at,
            r.completed_at,
            r.answers,
        )
        .join(Contact.__table__, Contact.__table__.c.id == r.contact_id)
        .where(r.survey_key == key)
        .order_by(r.id)
    )
    if since is not None:
        query = query.where(r.started_at >= since)
    # Core rows, streamed from a server-side cursor in batches: memory stays flat.
    with db.begin_read() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        for row in rows:
            status = status_now(row.status, row.updated_at, now, ttl)
            fixed = [
                str(row.id),
                row.survey_key,
                row.version,
                row.phone,
                row.channel,
                row.language,
                status,
                "yes" if status == COMPLETED else "no",
                row.started_at.isoformat(),
                row.updated_at.isoformat(),
                row.completed_at.isoformat() if row.completed_at else "",
            ]
            answers = row.answers or {}
            cells = [neutralize(c) for c in fixed]
            if PHONE.match(row.phone):  # E.164 as we stored it: keep the "+" readable
                cells[3] = row.phone
            yield cells + [neutralize(_cell(answers.get(q))) for q in columns.questions]


def write_results_csv(
    db: Database,
    key: str,
    out: IO[str],
    current: Flow | None,
    since: datetime | None = None,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
) -> int:
    """Writes the survey's responses as CSV to `out`; returns how many rows."""
    columns = ResultColumns.for_survey(db, key, current)
    writer = csv.writer(out)
    writer.writerow(FIXED_COLUMNS + [QUESTION_PREFIX + q for q in columns.questions])
    count = 0
    for row in iter_results(db, key, columns, since=since, now=now, ttl=ttl):
        writer.writerow(row)
        count += 1
    return count


@dataclass
class VersionSummary:
    """Counts for one survey version: responses, completion and answers per option."""

    version: str
    responses: int = 0
    completed: int = 0
    answers: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def completion_rate(self) -> float:
        return self.completed / self.responses if self.responses else 0.0


def summarize(
    db: Database,
    key: str,
    since: datetime | None = None,
    free_text: frozenset[str] = frozenset(),
    batch: int = 500,
) -> list[VersionSummary]:
    """Per version: how many responded, how many completed, how often each answer was given.

    Answers to the `free_text` questions are not counted (every one is different).
    """
    summaries: dict[str, VersionSummary] = {}
    query = select(SurveyResponse.version, SurveyResponse.status, SurveyResponse.answers).where(
        SurveyResponse.survey_key == key
    )
    if since is not None:
        query = query.where(SurveyResponse.started_at >= since)
    with db.read() as session:
        for version, status, answers in session.execute(
            query.order_by(SurveyResponse.id).execution_options(yield_per=batch)
        ):
            summary = summaries.setdefault(version, VersionSummary(version))
            summary.responses += 1
            summary.completed += status == COMPLETED
            for question, value in (answers or {}).items():
                if question in free_text:
                    continue
                counts = summary.answers.setdefault(question, Counter())
                if isinstance(value, list):
                    counts.update(str(v) for v in value)
                elif isinstance(value, str | int) and not isinstance(value, bool):
                    counts[str(value)] += 1
    # Responses of erased people, and answers the retention sweep blanked, stay counted
    # (bot/personal_data/tallies.py); their day is the grain of `since` for them.
    t = SurveyTally.__table__.c
    tallies = (
        select(t.version, t.question, t.value, func.sum(t.count))
        .where(t.survey_key == key)
        .group_by(t.version, t.question, t.value)
    )
    if since is not None:
        tallies = tallies.where(t.started_on >= since.date())
    with db.read() as session:
        for version, question, value, n in session.execute(tallies):
            summary = summaries.setdefault(version, VersionSummary(version))
            if question == "":
                if value == "responses":
                    summary.responses += int(n)
                elif value == "completed":
                    summary.completed += int(n)
            elif question not in free_text:
                summary.answers.setdefault(question, Counter())[value] += int(n)
    return sorted(summaries.values(), key=lambda s: s.version)


def response_count(db: Database, key: str) -> int:
    """How many responses a survey has had, erased people's included."""
    t = SurveyTally.__table__.c
    with db.read() as session:
        stored = session.scalar(
            select(func.count()).select_from(SurveyResponse).where(SurveyResponse.survey_key == key)
        )
        erased = session.scalar(
            select(func.sum(t.count)).where(
                t.survey_key == key, t.question == "", t.value == "responses"
            )
        )
    return int(stored or 0) + int(erased or 0)


def invitable_contact(db: Database, phone: str) -> int | None:
    """The contact with this E.164 number who can be invited into a survey (someone who has
    texted us or was imported; not a simulator contact), or None."""
    with db.read() as session:
        return session.scalar(
            select(Contact.id).where(Contact.phone == phone, Contact.simulated.is_(False))
        )
