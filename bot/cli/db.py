"""`bot db`: the database schema."""

from __future__ import annotations

import click

from bot.cli.common import settings_or_exit


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.option("--create", is_flag=True, help="create the PostgreSQL database if it is missing")
def db_upgrade(revision: str, create: bool) -> None:
    """Applies the database migrations."""
    from bot.db.migrate import create_database, upgrade

    settings = settings_or_exit()
    if create and create_database(settings.database_url):
        click.echo("database created")
    upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")
