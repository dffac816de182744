"""What every command group of the `bot` command line shares: settings and the database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from bot.db.database import Database
from bot.settings import Settings, SettingsError, load_settings


def settings_or_exit() -> Settings:
    """The deployment's settings; a malformed one ends the command naming it."""
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Database]:
    """The configured database, disposed of when the command ends."""
    db = Database(settings.database_url)
    try:
        yield db
    finally:
        db.dispose()
