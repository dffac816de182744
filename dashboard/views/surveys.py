"""Surveys: responses and completion per version, a chart per question, CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta

from flask import Response, abort, render_template, stream_with_context
from markupsafe import Markup

from bot.core.messages import Language
from bot.surveys import (
    FIXED_COLUMNS,
    QUESTION_PREFIX,
    ResultColumns,
    VersionSummary,
    iter_results,
    response_count,
    summarize,
)
from dashboard.accounts import STAFF
from dashboard.blueprint import arg_date, bp, requires, runtime
from dashboard.charts import bar_chart
from dashboard.conversations import local_midnight
from flows.schema import Flow, Question

MAX_VALUES = 15  # number questions: the most frequent answers only


def _survey(key: str) -> Flow:
    flow = runtime().flows.current.get(key)
    if flow is None or flow.kind != "survey":
        abort(404)
    return flow


def _english(text: object) -> str:
    if isinstance(text, dict) or hasattr(text, "get"):
        return str(text.get(Language.EN) or text.get("en") or "")
    return str(text)


def question_chart(question: Question, counts: dict[str, int]) -> Markup:
    """The answers to one question as bars, labelled with the options' English text."""
    if question.options:
        rows = [(_english(o.label), float(counts.get(o.value, 0))) for o in question.options]
        known = {o.value for o in question.options}
        rows += [(value, float(n)) for value, n in counts.items() if value not in known]
    elif question.type == "yesno":
        rows = [("yes", float(counts.get("yes", 0))), ("no", float(counts.get("no", 0)))]
    else:
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_VALUES]
        rows = [(value, float(n)) for value, n in ordered]
    return bar_chart(rows, _english(question.text))


@bp.get("/surveys")
@requires(*STAFF)
def surveys() -> str:
    """Every survey the bot runs, with its response count."""
    rt = runtime()
    listed = [
        (flow, response_count(rt.db, flow.key))
        for flow in sorted(rt.flows.current.values(), key=lambda f: f.key)
        if flow.kind == "survey"
    ]
    return render_template("dashboard/surveys.html", surveys=listed, english=_english)


@bp.get("/surveys/<key>")
@requires(*STAFF)
def survey(key: str) -> str:
    """One survey: per version, responses, completion rate and a chart per question."""
    flow = _survey(key)
    rt = runtime()
    since_day = arg_date("since")
    since = local_midnight(since_day, runtime().settings.zone) if since_day else None
    free_text = frozenset(q.id for q in flow.questions if q.type == "text")
    summaries: list[VersionSummary] = summarize(rt.db, key, since=since, free_text=free_text)
    versions = []
    for summary in reversed(summaries):
        definition = rt.flows.get(key, summary.version) or flow
        charts = [
            (
                question,
                sum(summary.answers.get(question.id, {}).values()),
                question_chart(question, dict(summary.answers.get(question.id, {}))),
            )
            for question in definition.questions
            if question.type != "text"
        ]
        texts = [q for q in definition.questions if q.type == "text"]
        versions.append((summary, charts, texts))
    return render_template(
        "dashboard/survey.html", flow=flow, versions=versions, english=_english, since=since_day
    )


@bp.get("/surveys/<key>/export.csv")
@requires(*STAFF)
def survey_export(key: str) -> Response:
    """The responses as CSV (from a date on), streamed; formula-like cells are neutralized."""
    flow = _survey(key)
    rt = runtime()
    since_day = arg_date("since")
    since = local_midnight(since_day, runtime().settings.zone) if since_day else None
    columns = ResultColumns.for_survey(rt.db, key, flow)
    ttl = timedelta(minutes=rt.settings.session_timeout_minutes)
    now = rt.clock()

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(FIXED_COLUMNS + [QUESTION_PREFIX + q for q in columns.questions])
        for row in iter_results(rt.db, key, columns, since=since, now=now, ttl=ttl):
            writer.writerow(row)
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    suffix = f"-from-{since_day.isoformat()}" if since_day else ""
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{flow.key}-results{suffix}.csv"',
            "Cache-Control": "no-store",
        },
    )
