"""What every command group shares: settings, the database, the wired service for one command."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import click

from bot.db.database import Database
from bot.processes import Process, StartError
from bot.processes import start_rasa as start_rasa_server
from bot.settings import Settings, SettingsError, load_settings


def settings_or_exit() -> Settings:
    """The deployment's settings; a malformed one ends the command naming it."""
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None


def freeze_startup_heap() -> None:
    """Takes what a long-running process loaded at start (libraries, content, flows, the
    catalogue) out of the cyclic garbage collector's sight: it is never freed, and a full
    collection that walks it holds the GIL for the whole walk. Measured at 300 msg/s on
    `make run` (issue 15): full collections of 82–210 ms in each web process, every request of
    the process stalled meanwhile, and the other one waiting at the write gate behind it."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Database]:
    """The configured database, disposed of when the command ends."""
    db = Database(settings.database_url)
    try:
        yield db
    finally:
        db.dispose()


@contextlib.contextmanager
def service() -> Iterator[Any]:
    """The wired service for one command; its refusals become clean command-line errors."""
    from bot.broadcasts.audience import AudienceError
    from bot.broadcasts.service import BroadcastError
    from bot.feedback import FeedbackError
    from bot.runtime import Runtime

    runtime = Runtime(settings_or_exit())
    try:
        yield runtime
    except (BroadcastError, AudienceError, FeedbackError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        runtime.close()


def start_rasa(port: int, token: str, own_process_group: bool = False) -> Process:
    """Starts Rasa's server on 127.0.0.1 with the trained model and waits until it answers."""
    click.echo(f"starting Rasa on http://127.0.0.1:{port} …")
    try:
        return start_rasa_server(port, token, own_process_group=own_process_group)
    except StartError:
        raise click.ClickException("Rasa did not start; see its output above") from None
