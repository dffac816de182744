"""One's own account: change the password, sign out everywhere, two-factor sign-in."""

from __future__ import annotations

from flask import flash, redirect, render_template, session, url_for
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from dashboard import two_factor
from dashboard.accounts import (
    MIN_PASSWORD,
    ROLES,
    AccountError,
    change_own_password,
    check_password,
    reload_account,
    sign_out_everywhere,
)
from dashboard.audit import record
from dashboard.blueprint import account, bp, requires, runtime
from dashboard.login import TOO_MANY, attempt_allowed


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])
    new = PasswordField(
        f"New password ({MIN_PASSWORD}+ characters)", validators=[DataRequired(), Length(max=200)]
    )
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new", message="the two new passwords differ")],
    )


class CodeForm(FlaskForm):
    code = StringField("Code from the app", validators=[DataRequired(), Length(max=40)])


class PasswordCheckForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired(), Length(max=200)])


class PlainForm(FlaskForm):
    """A button: only the CSRF token."""


def _sign_in_again() -> None:
    """After a change that ended every session of this account, this one goes on."""
    found = reload_account(runtime().db, account().id)
    if found is not None:
        login_user(found)


def _audit(action: str, **detail: object) -> None:
    with runtime().db.write() as db:
        record(db, account().label, action, {"user_id": account().id, **detail})


@bp.get("/account")
@requires(*ROLES)
def my_account() -> str:
    """The signed-in person's own account: password, sessions, two-factor sign-in."""
    me = account()
    left = two_factor.recovery_codes_left(runtime().db, me.id) if me.two_factor else 0
    return render_template(
        "dashboard/account.html",
        me=me,
        codes_left=left,
        required=runtime().settings.require_2fa,
        plain=PlainForm(),
        check=PasswordCheckForm(),
    )


@bp.route("/account/password", methods=["GET", "POST"])
@requires(*ROLES)
def password_change() -> str | Response | tuple[str, int]:
    """Choose a new password (the only page open while the current one must change)."""
    form = PasswordChangeForm()
    me = account()
    if form.is_submitted():
        error = None
        if not form.validate():
            error = next(iter(form.confirm.errors), None) or "Fill in every field."
        elif not attempt_allowed("login-account", me.email):
            page = render_template("dashboard/password.html", form=form, error=TOO_MANY)
            return page, 429
        else:
            try:
                change_own_password(
                    runtime().db, me.id, form.current.data or "", form.new.data or ""
                )
            except AccountError as exc:
                error = str(exc).capitalize() + "."
        if error:
            return render_template("dashboard/password.html", form=form, error=error), 400
        _sign_in_again()
        _audit("password_changed")
        flash("Password changed. Every other session of your account was signed out.", "ok")
        return redirect(url_for("dashboard.home"), code=303)
    return render_template("dashboard/password.html", form=form, error=None)


@bp.post("/account/sign-out-everywhere", endpoint="sign_out_everywhere")
@requires(*ROLES)
def sign_out_everywhere_view() -> Response:
    """Ends every session of this account, this one included."""
    if not PlainForm().validate_on_submit():
        return redirect(url_for("dashboard.my_account"), code=303)
    _audit("signed_out_everywhere")
    sign_out_everywhere(runtime().db, account().id)
    logout_user()
    session.clear()
    flash("You were signed out on every device.", "ok")
    return redirect(url_for("dashboard.login"), code=303)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@requires(*ROLES)
def two_factor_setup() -> str | Response | tuple[str, int]:
    """Turn on two-factor sign-in: scan or type the secret, confirm with a code; the
    recovery codes are shown once."""
    me = account()
    rt = runtime()
    if me.two_factor:
        flash("Two-factor sign-in is already on.", "info")
        return redirect(url_for("dashboard.my_account"), code=303)
    form = CodeForm()
    error = None
    status = 200
    if form.is_submitted():
        if not form.validate():
            status, error = 400, "Enter the 6-digit code the app shows."
        elif not attempt_allowed("login-2fa", str(me.id)):
            status, error = 429, TOO_MANY
        else:
            try:
                codes = two_factor.confirm_enrolment(rt.db, me.id, form.code.data or "", rt.clock())
            except AccountError as exc:
                status, error = 400, str(exc).capitalize() + "."
            else:
                _sign_in_again()
                _audit("two_factor_enabled")
                return render_template("dashboard/recovery_codes.html", codes=codes, new=True)
    secret = two_factor.begin_enrolment(rt.db, me.id)
    uri = two_factor.provisioning_uri(secret, me.email)
    page = render_template(
        "dashboard/two_factor.html",
        form=form,
        error=error,
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        uri=uri,
        qr=two_factor.qr_data_uri(uri),
        required=rt.settings.require_2fa,
    )
    return page, status


def _password_confirmed() -> bool:
    """The sensitive change below was asked for with the account's password."""
    form = PasswordCheckForm()
    me = account()
    if not form.validate_on_submit():
        flash("Enter your password to confirm.", "error")
        return False
    if not attempt_allowed("login-account", me.email):
        flash(TOO_MANY, "error")
        return False
    if not check_password(runtime().db, me.id, form.password.data or ""):
        flash("The password is wrong.", "error")
        return False
    return True


@bp.post("/account/two-factor/off")
@requires(*ROLES)
def two_factor_off() -> Response:
    """Turn two-factor sign-in off (not when every account must have it)."""
    if runtime().settings.require_2fa:
        flash("Two-factor sign-in is required for every account here.", "error")
    elif account().two_factor and _password_confirmed():
        two_factor.turn_off(runtime().db, account().id)
        _audit("two_factor_disabled")
        flash("Two-factor sign-in is off.", "ok")
    return redirect(url_for("dashboard.my_account"), code=303)


@bp.post("/account/two-factor/recovery-codes")
@requires(*ROLES)
def recovery_codes_new() -> str | Response:
    """New recovery codes (the old ones stop working), shown once."""
    if not account().two_factor or not _password_confirmed():
        return redirect(url_for("dashboard.my_account"), code=303)
    codes = two_factor.new_recovery_codes(runtime().db, account().id, runtime().clock())
    _audit("recovery_codes_replaced")
    return render_template("dashboard/recovery_codes.html", codes=codes, new=False)
