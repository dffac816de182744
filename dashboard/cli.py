"""`bot users …`: dashboard accounts (admin, coordinator, mobilizer)."""

from __future__ import annotations

import click


@click.group()
def users() -> None:
    """Dashboard users: create, list, change roles and groups."""
