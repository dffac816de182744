"""`bot contacts export|erase` and `bot retention sweep`: personal data."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bot.cli.common import database, settings_or_exit
from bot.db.models import utcnow
from bot.phone import InvalidPhone, to_e164
from bot.settings import Settings


def _phone(raw: str, settings: Settings) -> str:
    try:
        return to_e164(raw, settings.default_region)
    except InvalidPhone as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from None


@click.group("contacts")
def contacts() -> None:
    """One person's data: export it, erase it."""


@contacts.command("export")
@click.argument("phone")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="json: one document; csv: a zip with one CSV file per table",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="file to write (default: standard output)",
)
@click.option("--by", default="cli", show_default=True, help="who asks (for the audit log)")
def contacts_export(phone: str, fmt: str, out: Path | None, by: str) -> None:
    """Writes everything stored about PHONE: contact, messages, answers, feedback, consent."""
    from bot.personal_data.export import collect, record_export, to_json, write_csv_zip

    settings = settings_or_exit()
    number = _phone(phone, settings)
    if fmt == "csv" and out is None and sys.stdout.isatty():
        raise click.ClickException("the CSV export is a zip file: give --out FILE")
    with database(settings) as db:
        now = utcnow()
        data = collect(db, number, now)
        if not data.found:
            raise click.ClickException("no contact has this number")
        if fmt == "json":
            text = to_json(data) + "\n"
            if out is None:
                click.echo(text, nl=False)
            else:
                out.write_text(text, encoding="utf-8")
        elif out is None:
            write_csv_zip(data, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with out.open("wb") as handle:
                write_csv_zip(data, handle)
        record_export(db, data, by, fmt, now)
    counts = ", ".join(f"{name} {n}" for name, n in data.counts().items() if n)
    click.echo(f"exported: {counts}", err=True)


@contacts.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="really erase (there is no undo)")
@click.option("--by", default="cli", show_default=True, help="who asks (for the audit log)")
def contacts_erase(phone: str, yes: bool, by: str) -> None:
    """Erases PHONE's contact, messages, answers, feedback and files; keeps an opt-out hash
    and anonymous survey counts (README: Personal data)."""
    from bot.personal_data.erase import erase
    from bot.privacy import mask_phone
    from bot.queue import make_huey

    settings = settings_or_exit()
    number = _phone(phone, settings)
    if not yes:
        raise click.ClickException(
            f"this erases everything about {mask_phone(number)} for good: add --yes"
        )
    huey = make_huey(settings)
    with database(settings) as db:
        report = erase(db, settings, number, by, utcnow(), huey=huey)
    for line in report.lines():
        click.echo(line)


@click.group("retention")
def retention() -> None:
    """Retention of message bodies, survey answers and feedback text (RETENTION_DAYS)."""


@retention.command("sweep")
@click.option(
    "--days", type=click.IntRange(min=1), default=None, help="override RETENTION_DAYS this once"
)
def retention_sweep(days: int | None) -> None:
    """Blanks bodies, answers and feedback text older than RETENTION_DAYS (counts stay)."""
    from bot.personal_data.retention import sweep

    settings = settings_or_exit()
    with database(settings) as db:
        report = sweep(db, settings, utcnow(), days=days)
    click.echo(report.line())
