"""Survey answers counted without the person (the `survey_tallies` table).

Erasure deletes a person's survey responses and retention blanks old answers; both first add
what the responses said to per-day counts, so the survey's results (bot.surveys.summarize,
the dashboard's survey page, `bot survey summary`) keep counting them. Free-text answers are
never counted: they are the person's own words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, tzinfo
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db.models import SurveyTally, SurveyVersion
from flows.engine import COMPLETED

RESPONSES = "responses"
COMPLETED_COUNT = "completed"
WHOLE = ""  # the `question` of whole-response counts
MAX_VALUE = 200

Key = tuple[str, str, date, str, str]


def free_text_questions(session: Session, survey_key: str, version: str) -> frozenset[str]:
    """The ids of the free-text questions of one stored survey version."""
    definition = session.scalar(
        select(SurveyVersion.definition).where(
            SurveyVersion.survey_key == survey_key, SurveyVersion.version == version
        )
    )
    questions = (definition or {}).get("questions") or []
    return frozenset(str(q.get("id")) for q in questions if q.get("type") == "text")


def answer_values(value: Any) -> list[str]:
    """The countable values of one answer (as bot.surveys.summarize counts them)."""
    if isinstance(value, list):
        return [str(v)[:MAX_VALUE] for v in value]
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [str(value)[:MAX_VALUE]]
    return []


def fold(session: Session, responses: Iterable[Any], zone: tzinfo, whole: bool) -> int:
    """Adds the responses' answers (and, with `whole`, the responses themselves) to the tallies.

    Args:
        session: the write session the responses are deleted or blanked in.
        responses: rows with survey_key, version, status, answers, started_at.
        zone: the deployment's time zone (tallies count by local day).
        whole: count the responses and completions too (they are being deleted).

    Returns:
        How many responses were folded.
    """
    counts: Counter[Key] = Counter()
    free: dict[tuple[str, str], frozenset[str]] = {}
    folded = 0
    for row in responses:
        folded += 1
        day = row.started_at.astimezone(zone).date()
        base = (row.survey_key, row.version, day)
        if whole:
            counts[(*base, WHOLE, RESPONSES)] += 1
            if row.status == COMPLETED:
                counts[(*base, WHOLE, COMPLETED_COUNT)] += 1
        skip = free.get((row.survey_key, row.version))
        if skip is None:
            skip = free[(row.survey_key, row.version)] = free_text_questions(
                session, row.survey_key, row.version
            )
        for question, value in (row.answers or {}).items():
            if question in skip:
                continue
            for text in answer_values(value):
                counts[(*base, str(question)[:64], text)] += 1
    if counts:
        table: Table = SurveyTally.__table__  # type: ignore[assignment]
        bind = session.get_bind()
        insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
        statement = insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=[
                table.c.survey_key,
                table.c.version,
                table.c.started_on,
                table.c.question,
                table.c.value,
            ],
            set_={"count": table.c.count + statement.excluded.count},
        )
        session.execute(
            statement,
            [
                {
                    "survey_key": key,
                    "version": version,
                    "started_on": day,
                    "question": question,
                    "value": value,
                    "count": n,
                }
                for (key, version, day, question, value), n in sorted(counts.items())
            ],
        )
    return folded
