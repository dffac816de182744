"""The `bot` command: the single command-line entry to the service.

Each command group lives in a module of its own; this one only wires them into `main`, so
`bot …` (the console script) and `python -m bot` / `python -m bot.cli` are one command tree.
A command's module is imported when that command runs (or `--help` lists them all): `bot
run` and each process it starts import what they need, not every other command's libraries
(issue 15: webhooks accepted within seconds of a start).
"""

from __future__ import annotations

import importlib
import os

import click

# Command name: the module and attribute that define it.
COMMANDS = {
    "db": "db:db",
    "nlu": "nlu:nlu",
    "survey": "survey:survey",
    "broadcast": "broadcast:broadcast",
    "feedback": "feedback:feedback",
    "faq": "nlu:faq",
    "web": "web:web",
    "worker": "worker:worker",
    "scheduler": "scheduler:scheduler",
    "run": "run:run",
    "users": "users:users",
    "contacts": "contacts:contacts",
    "retention": "contacts:retention",
}


class _Commands(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        command: click.Command = getattr(importlib.import_module(f"bot.cli.{module}"), attribute)
        return command


def _logging(level: str = "INFO", role: str | None = None) -> None:
    from bot import logs

    logs.configure(level, role=role)


@click.group(cls=_Commands)
@click.option(
    "--log-level", default=lambda: os.environ.get("LOG_LEVEL", "INFO"), show_default="INFO"
)
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Community awareness and feedback chatbot."""
    _logging(log_level, role=ctx.invoked_subcommand)
