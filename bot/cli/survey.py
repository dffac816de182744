"""`bot survey`: check the definitions, list them, invite, export results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bot.cli.common import database, settings_or_exit


def _date(value: str | None) -> Any:
    """A --since date (YYYY-MM-DD, or a full ISO time) as an aware UTC datetime."""
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _flow_files() -> Any:
    from bot.core.content import ContentError
    from flows.schema import FlowFiles

    try:
        return FlowFiles.load()
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def survey() -> None:
    """Surveys: check the definitions, list them, export results."""


@survey.command("check")
def survey_check() -> None:
    """Loads and validates every survey and the feedback flow (errors name file and line)."""
    files = _flow_files()
    for flow in [*files.surveys.values(), *([files.feedback] if files.feedback else [])]:
        click.echo(f"ok  {flow.key:<24} {flow.kind:<9} {len(flow.questions)} questions")


@survey.command("list")
def survey_list() -> None:
    """Lists surveys with their running version and number of responses."""
    from bot.surveys import read_book, response_count

    with database(settings_or_exit()) as db:
        book = read_book(db, _flow_files())
        click.echo(f"{'survey':<24} {'version':<8} {'questions':>9} {'responses':>9}")
        for flow in book.current.values():
            default = "  (default)" if flow.key == book.default_survey_key else ""
            click.echo(
                f"{flow.key:<24} {flow.version:<8} {len(flow.questions):>9} "
                f"{response_count(db, flow.key):>9}{default}"
            )


@survey.command("invite")
@click.argument("key")
@click.argument("phones", nargs=-1, required=True)
def survey_invite(key: str, phones: tuple[str, ...]) -> None:
    """Starts survey KEY for each of PHONES (contacts who have texted us or were imported)."""
    from bot.phone import InvalidPhone, to_e164
    from bot.runtime import Runtime
    from bot.surveys import invitable_contact

    settings = settings_or_exit()
    runtime = Runtime(settings)
    try:
        for raw in phones:
            try:
                phone = to_e164(raw, settings.default_region)
            except InvalidPhone as exc:
                click.echo(f"{raw}: {exc}")
                continue
            contact_id = invitable_contact(runtime.db, phone)
            outcome = "unknown contact" if contact_id is None else runtime.invite(contact_id, key)
            click.echo(f"{phone}: {outcome}")
    finally:
        runtime.close()


@survey.command("results")
@click.argument("key")
@click.option("--since", default=None, help="only responses started on or after this date")
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="file to write ('-' for standard output)",
)
def survey_results(key: str, since: str | None, csv_path: Path) -> None:
    """Writes one CSV row per response of survey KEY (streamed: constant memory)."""
    from datetime import timedelta

    from bot.surveys import read_book, write_results_csv

    ttl = timedelta(minutes=settings_or_exit().session_timeout_minutes)
    start = _date(since)
    with database(settings_or_exit()) as db:
        current = read_book(db, _flow_files()).current.get(key)
        if str(csv_path) == "-":
            count = write_results_csv(db, key, sys.stdout, current, start, ttl)
        else:
            with csv_path.open("w", newline="", encoding="utf-8") as out:
                count = write_results_csv(db, key, out, current, start, ttl)
    click.echo(f"{count} responses written", err=True)


@survey.command("summary")
@click.argument("key")
@click.option("--since", default=None, help="only responses started on or after this date")
def survey_summary(key: str, since: str | None) -> None:
    """Counts per option and the completion rate, per version of survey KEY."""
    from bot.core.messages import Language
    from bot.surveys import read_book, summarize

    start = _date(since)
    with database(settings_or_exit()) as db:
        book = read_book(db, _flow_files())
        free_text = frozenset(
            q.id
            for flow in book.versions.values()
            if flow.key == key
            for q in flow.questions
            if q.type == "text"
        )
        summaries = summarize(db, key, start, free_text)
    current = book.current.get(key)
    if current is None:
        raise click.ClickException(f"no survey {key!r} (see: bot survey list)")
    if not summaries:
        click.echo("no responses yet")
    for summary in summaries:
        flow = book.get(key, summary.version) or current
        click.echo(
            f"version {summary.version}: {summary.responses} responses, "
            f"{summary.completed} completed ({summary.completion_rate:.0%})"
        )
        for question in flow.questions:
            counts = summary.answers.get(question.id)
            if question.type == "text" or not counts:
                continue
            click.echo(f"  {question.id}")
            labels = {o.value: o.label for o in question.options}
            for value, n in counts.most_common():
                label = labels[value][Language.EN] if value in labels else value
                click.echo(f"    {n:>6}  {label}")
