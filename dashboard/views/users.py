"""Administration (admins only): accounts, roles and groups, the audit log, the settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass

from flask import abort, flash, redirect, render_template, url_for
from flask_login import login_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from bot.channels.registry import providers
from bot.db.models import AuditEvent, User
from dashboard.accounts import (
    ADMIN,
    ROLES,
    AccountError,
    create_user,
    list_users,
    reload_account,
    set_password,
    sign_out_everywhere,
    update_user,
)
from dashboard.audit import record
from dashboard.blueprint import PAGE_SIZE, account, arg_int, bp, requires, runtime, state
from dashboard.two_factor import turn_off

ROLE_CHOICES = [SelectChoice(r) for r in ROLES]
# Shown only as "(set)": every field Settings keeps out of its repr, and these.
# Providers add their own (`Provider.secret_settings`, bot/channels/registry.py).
SECRET_SETTINGS = {"secret_key", "ops_token", "rasa_token", "phone_hash_key"}
# Shown under their environment variables' names in the page's dashboard section.
DASHBOARD_SETTINGS = {
    "handoff_hours",
    "login_limit_ip",
    "login_limit_account",
    "nlu_train_command",
    "nlu_models_dir",
}


class NewUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=200)])
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    phone = StringField(
        "Phone (mobilizers who send BROADCAST by SMS)", validators=[Optional(), Length(max=32)]
    )
    groups = StringField("Groups (comma-separated)", validators=[Optional(), Length(max=1000)])
    password = PasswordField(
        "Password (10+ characters)", validators=[DataRequired(), Length(max=200)]
    )


class EditUserForm(FlaskForm):
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    phone = StringField("Phone", validators=[Optional(), Length(max=32)])
    groups = StringField("Groups (comma-separated)", validators=[Optional(), Length(max=1000)])
    active = BooleanField("Active (may sign in)")
    password = PasswordField(
        "New password (leave empty to keep)", validators=[Optional(), Length(max=200)]
    )


@bp.route("/users", methods=["GET", "POST"])
@requires(ADMIN)
def users() -> str | Response | tuple[str, int]:
    """Every account, and a form to create one."""
    form = NewUserForm()
    rt = runtime()
    if form.is_submitted():
        if not form.validate():
            flash("Fill in the email, the role and a password.", "error")
        else:
            try:
                user_id = create_user(
                    rt.db,
                    form.email.data or "",
                    form.role.data or "",
                    form.password.data or "",
                    form.name.data,
                    form.phone.data,
                    (form.groups.data or "").split(","),
                    region=rt.settings.default_region,
                    # The admin knows this password: its holder chooses their own at once.
                    must_change_password=True,
                )
            except AccountError as exc:
                flash(str(exc), "error")
            else:
                with rt.db.write() as db:
                    record(
                        db,
                        account().label,
                        "user_created",
                        {"user_id": user_id, "role": form.role.data},
                    )
                flash(f"Account created for {form.email.data}.", "ok")
                return redirect(url_for("dashboard.users"), code=303)
        return render_template("dashboard/users.html", users=list_users(rt.db), form=form), 400
    return render_template("dashboard/users.html", users=list_users(rt.db), form=form)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@requires(ADMIN)
def user(user_id: int) -> str | Response | tuple[str, int]:
    """Change one account's role, groups, phone, active flag or password."""
    rt = runtime()
    with rt.db.read() as db:
        found = db.get(User, user_id)
    if found is None:
        abort(404)
    row = next(r for r in list_users(rt.db) if r.id == user_id)
    form = EditUserForm()
    if form.is_submitted():
        if form.validate():
            try:
                update_user(
                    rt.db,
                    user_id,
                    role=form.role.data,
                    name=form.name.data or "",
                    groups=(form.groups.data or "").split(","),
                    active=bool(form.active.data),
                    phone=form.phone.data or "",
                    region=rt.settings.default_region,
                )
                if form.password.data:
                    # A reset: its holder must choose their own at the next sign-in (an
                    # admin setting their own password here just goes on).
                    own = user_id == account().id
                    set_password(rt.db, user_id, form.password.data, must_change=not own)
                    if own:
                        _sign_in_again(user_id)
            except AccountError as exc:
                flash(str(exc), "error")
            else:
                with rt.db.write() as db:
                    record(
                        db,
                        account().label,
                        "user_updated",
                        {
                            "user_id": user_id,
                            "role": form.role.data,
                            "active": form.active.data,
                            "password_changed": bool(form.password.data),
                        },
                    )
                flash("Saved.", "ok")
                return redirect(url_for("dashboard.user", user_id=user_id), code=303)
        else:
            flash("Check the fields.", "error")
        return render_template("dashboard/user.html", row=row, form=form), 400
    form.name.data = row.name
    form.role.data = row.role
    form.phone.data = row.phone
    form.groups.data = ", ".join(row.groups)
    form.active.data = row.active
    return render_template("dashboard/user.html", row=row, form=form)


def _sign_in_again(user_id: int) -> None:
    found = reload_account(runtime().db, user_id)
    if found is not None:
        login_user(found)


class PlainForm(FlaskForm):
    """A button: only the CSRF token."""


@bp.post("/users/<int:user_id>/sign-out")
@requires(ADMIN)
def user_sign_out(user_id: int) -> Response:
    """Ends every session of an account (a lost phone, a shared computer)."""
    if not PlainForm().validate_on_submit():
        abort(400)
    try:
        sign_out_everywhere(runtime().db, user_id)
    except AccountError:
        abort(404)
    with runtime().db.write() as db:
        record(db, account().label, "user_signed_out", {"user_id": user_id})
    flash("Every session of this account was signed out.", "ok")
    return redirect(url_for("dashboard.user", user_id=user_id), code=303)


@bp.post("/users/<int:user_id>/two-factor/reset")
@requires(ADMIN)
def user_two_factor_reset(user_id: int) -> Response:
    """Turns off an account's two-factor sign-in (lost authenticator and recovery codes) and
    ends its sessions; its holder enrols again at the next sign-in if it is required."""
    if not PlainForm().validate_on_submit():
        abort(400)
    try:
        turn_off(runtime().db, user_id)
        sign_out_everywhere(runtime().db, user_id)
    except AccountError:
        abort(404)
    with runtime().db.write() as db:
        record(db, account().label, "user_two_factor_reset", {"user_id": user_id})
    flash("Two-factor sign-in was turned off for this account and its sessions ended.", "ok")
    return redirect(url_for("dashboard.user", user_id=user_id), code=303)


@bp.get("/audit")
@requires(ADMIN)
def audit() -> str:
    """Who did what, newest first."""
    before = arg_int("before", minimum=1)
    with runtime().db.read() as db:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(PAGE_SIZE + 1)
        if before:
            query = query.where(AuditEvent.id < before)
        events = db.scalars(query).all()
    return render_template(
        "dashboard/audit.html",
        events=events[:PAGE_SIZE],
        next_before=events[PAGE_SIZE - 1].id if len(events) > PAGE_SIZE else None,
    )


def _provider_rows(parsed: Mapping[str, object], secret: set[str]) -> list[tuple[str, object]]:
    """Each provider's own settings (bot/channels/<name>/settings.py) as "<name>_<field>"
    rows, masked like the service's; "(not set)" for a provider that is not configured."""
    rows: list[tuple[str, object]] = []
    for name, own in sorted(parsed.items()):
        if own is None or not is_dataclass(own):
            rows.append((name, "(not set)" if own is None else own))
            continue
        for f in fields(own):
            row, value = f"{name}_{f.name}", getattr(own, f.name)
            masked = row in secret or not f.repr
            rows.append(
                (row, ("(set)" if value else "(not set)") if masked else _without_password(value))
            )
    return rows


def _without_password(value: object) -> object:
    """A URL's password replaced by ***; anything else as it is."""
    if isinstance(value, str) and "://" in value:
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", value)
    if isinstance(value, tuple):
        return ", ".join(str(_without_password(v)) for v in value)
    return value


@bp.get("/settings")
@requires(ADMIN)
def settings() -> str:
    """The running configuration (from the environment; secrets hidden)."""
    current = state().settings
    dashboard = [
        ("HANDOFF_HOURS", current.handoff_hours),
        ("LOGIN_LIMIT_PER_IP", current.login_limit_ip),
        ("LOGIN_LIMIT_PER_ACCOUNT", current.login_limit_account),
        ("NLU_TRAIN_COMMAND", " ".join(current.nlu_train_command)),
        ("NLU_MODELS_DIR", current.nlu_models_dir),
    ]
    secret = SECRET_SETTINGS.union(*(provider.secret_settings for provider in providers()))
    service = [
        (f.name, "(set)" if getattr(current, f.name) else "(not set)")
        if f.name in secret or not f.repr
        else (f.name, _without_password(getattr(current, f.name)))
        for f in fields(current)
        if f.name not in DASHBOARD_SETTINGS and f.name != "providers"
    ] + _provider_rows(current.providers, secret)
    # Providers' credit balances (issue 11), asked at most once a minute.
    balances = [
        (name, route.balance.summary())
        for name, route in runtime().outbox.routes.items()
        if hasattr(route, "balance")
    ]
    # A provider's own table (issue 11: the Android gateway's phones), `panel()`.
    panels = [
        route.panel() for route in runtime().outbox.routes.values() if hasattr(route, "panel")
    ]
    return render_template(
        "dashboard/settings.html",
        service=service,
        dashboard=dashboard,
        balances=balances,
        panels=panels,
    )
