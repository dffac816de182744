"""`bot feedback`: list, change status, answer."""

from __future__ import annotations

import click

from bot.cli.common import database, service, settings_or_exit


@click.group()
def feedback() -> None:
    """Community feedback: list, change status, answer."""


@feedback.command("list")
@click.option("--status", default=None, help="new, in_review, answered or closed")
@click.option("--limit", default=50, show_default=True, type=int)
def feedback_list(status: str | None, limit: int) -> None:
    """The newest feedback first."""
    from bot.feedback import newest

    with database(settings_or_exit()) as db:
        for item in newest(db, status, limit):
            click.echo(
                f"{item.reference}  {item.created_at:%Y-%m-%d %H:%M}  {item.status:<9} "
                f"{item.category:<10} {item.body[:60]!r}"
            )


@feedback.command("status")
@click.argument("reference")
@click.argument("status")
def feedback_status(reference: str, status: str) -> None:
    """Moves feedback REFERENCE to STATUS (new, in_review, answered, closed)."""
    from bot.feedback import set_status

    with service() as runtime:
        set_status(runtime, reference, status)
    click.echo(f"{reference}: {status}")


@feedback.command("answer")
@click.argument("reference")
@click.argument("text")
@click.option("--by", default="cli", show_default=True, help="who answers")
def feedback_answer(reference: str, text: str, by: str) -> None:
    """Answers feedback REFERENCE with TEXT, sent to the person through the outbox."""
    from bot.feedback import answer

    with service() as runtime:
        answered = answer(runtime, reference, text, by)
    click.echo(f"{reference}: answered; message {answered.message_id} queued for sending")
