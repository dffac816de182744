"""`bot users …`: dashboard accounts (admin, coordinator, mobilizer)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from bot.cli.common import database, settings_or_exit
from bot.db.database import Database
from bot.settings import Settings
from dashboard.accounts import (
    ROLES,
    AccountError,
    create_user,
    list_users,
    set_password,
    sign_out_everywhere,
    update_user,
    user_id_for,
)
from dashboard.two_factor import turn_off


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    with database(settings) as db:
        try:
            yield db
        except AccountError as exc:
            raise click.ClickException(str(exc)) from None


def _password(given: str | None) -> str:
    if given:
        return given
    return str(click.prompt("Password (10+ characters)", hide_input=True, confirmation_prompt=True))


@click.group()
def users() -> None:
    """Dashboard users: create, list, change roles and groups."""


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", default=None, help="how the person is shown")
@click.option("--phone", default=None, help="a mobilizer's registered phone")
@click.option("--group", "groups", multiple=True, help="a group a mobilizer works with")
@click.option(
    "--password",
    envvar="BOT_USER_PASSWORD",
    default=None,
    help="the password (prompted for when omitted; or BOT_USER_PASSWORD)",
)
def users_create(
    email: str,
    role: str,
    name: str | None,
    phone: str | None,
    groups: tuple[str, ...],
    password: str | None,
) -> None:
    """Creates an account; the first one should be an admin."""
    settings = settings_or_exit()
    secret = _password(password)
    with _database(settings) as db:
        user_id = create_user(
            db, email, role, secret, name, phone, groups, region=settings.default_region
        )
    click.echo(f"created {role} {email.strip().lower()} (id {user_id})")


@users.command("list")
def users_list() -> None:
    """Lists every account."""
    with _database(settings_or_exit()) as db:
        rows = list_users(db)
    if not rows:
        click.echo("no accounts yet: bot users create --role admin EMAIL")
    for row in rows:
        state = "active" if row.active else "disabled"
        groups = ",".join(row.groups) or "-"
        click.echo(
            f"{row.id}\t{row.email}\t{row.role}\t{state}\tgroups={groups}\t"
            f"last login {row.last_login}"
        )


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
def users_set_role(email: str, role: str) -> None:
    """Changes an account's role."""
    with _database(settings_or_exit()) as db:
        update_user(db, user_id_for(db, email), role=role)
    click.echo(f"{email} is now {role}")


@users.command("set-groups")
@click.argument("email")
@click.argument("groups", nargs=-1)
def users_set_groups(email: str, groups: tuple[str, ...]) -> None:
    """Replaces the groups a mobilizer works with (none: no groups)."""
    with _database(settings_or_exit()) as db:
        update_user(db, user_id_for(db, email), groups=groups)
    click.echo(f"{email}: groups {', '.join(groups) or '(none)'}")


@users.command("set-password")
@click.argument("email")
@click.option("--password", envvar="BOT_USER_PASSWORD", default=None)
@click.option(
    "--must-change/--no-must-change",
    default=True,
    show_default=True,
    help="the holder must choose their own password at the next sign-in",
)
def users_set_password(email: str, password: str | None, must_change: bool) -> None:
    """Sets a new password; the account's sessions end."""
    settings = settings_or_exit()
    secret = _password(password)
    with _database(settings) as db:
        set_password(db, user_id_for(db, email), secret, must_change=must_change)
    click.echo(f"password changed for {email}")


@users.command("sign-out")
@click.argument("email")
def users_sign_out(email: str) -> None:
    """Ends every session of an account, on every device."""
    with _database(settings_or_exit()) as db:
        sign_out_everywhere(db, user_id_for(db, email))
    click.echo(f"{email} signed out everywhere")


@users.command("reset-2fa")
@click.argument("email")
def users_reset_two_factor(email: str) -> None:
    """Turns off an account's two-factor sign-in (a lost phone and recovery codes) and ends
    its sessions."""
    with _database(settings_or_exit()) as db:
        user_id = user_id_for(db, email)
        turn_off(db, user_id)
        sign_out_everywhere(db, user_id)
    click.echo(f"two-factor sign-in turned off for {email}; its sessions ended")


@users.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disables an account (it can no longer sign in; its sessions end)."""
    _set_active(email, False)


@users.command("enable")
@click.argument("email")
def users_enable(email: str) -> None:
    """Enables a disabled account again."""
    _set_active(email, True)


def _set_active(email: str, active: bool) -> None:
    with _database(settings_or_exit()) as db:
        update_user(db, user_id_for(db, email), active=active)
    click.echo(f"{email} {'enabled' if active else 'disabled'}")
