"""The `bot` command: the single command-line entry to the service.

Each command group lives in a module of its own; this one only wires them into `main`, so
`bot …` (the console script) and `python -m bot` / `python -m bot.cli` are one command tree.
"""

from __future__ import annotations

import os

import click

from bot.cli import (
    broadcast,
    contacts,
    db,
    feedback,
    nlu,
    run,
    scheduler,
    survey,
    users,
    web,
    worker,
)


def _logging(level: str = "INFO", role: str | None = None) -> None:
    from bot import logs

    logs.configure(level, role=role)


@click.group()
@click.option(
    "--log-level", default=lambda: os.environ.get("LOG_LEVEL", "INFO"), show_default="INFO"
)
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Community awareness and feedback chatbot."""
    _logging(log_level, role=ctx.invoked_subcommand)


for command in (
    db.db,
    nlu.nlu,
    survey.survey,
    broadcast.broadcast,
    feedback.feedback,
    nlu.faq,
    web.web,
    worker.worker,
    scheduler.scheduler,
    run.run,
    users.users,
    contacts.contacts,
    contacts.retention,
):
    main.add_command(command)
