"""Signing in and out: Flask-Login sessions, rate-limited attempts per address and account,
the second factor (TOTP or a recovery code), and the gate that sends an account whose
password must change, or that must enrol in two-factor sign-in, to that page first.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, RateLimiter
from werkzeug.wrappers import Response as BaseResponse
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from bot.db.pace_store import LOGIN_LIMITS_FILE, SharedFileStorage
from bot.settings import Settings
from dashboard import two_factor
from dashboard.accounts import Account, authenticate, load_account
from dashboard.audit import record
from dashboard.blueprint import account, bp, runtime, state

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(hours=12)
# How long the password step stays good while the person finds their authenticator app.
SECOND_FACTOR_SECONDS = 300
PENDING = "pending_second_factor"
# Pages an account may open while its password must change or two-factor must be set up.
ALWAYS_OPEN = frozenset({"dashboard.logout", "dashboard.static", "simulator.static"})
TOO_MANY = "Too many sign-in attempts. Wait a few minutes and try again."


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=200)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class SecondFactorForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[DataRequired(), Length(max=40)],
    )


def make_limiter(settings: Settings) -> RateLimiter:
    """Counts login attempts where every web process sees them: in Redis when REDIS_URL is
    set, else in a file of the machine's (bot/db/pace_store.py)."""
    url = settings.redis_url
    if url is None:
        shared = SharedFileStorage(settings.var_dir / LOGIN_LIMITS_FILE, wrap_exceptions=True)
        return MovingWindowRateLimiter(shared)
    if url.startswith("unix://"):
        url = "redis+unix://" + url[len("unix://") :]
    return MovingWindowRateLimiter(storage_from_string(url, wrap_exceptions=True))


def init_login(app: Flask) -> None:
    """Installs Flask-Login with the dashboard's account loader, login page and gate."""
    manager = LoginManager()
    manager.login_view = "dashboard.login"
    manager.login_message = "Please sign in to see this page."
    manager.login_message_category = "info"
    manager.session_protection = "basic"

    @manager.user_loader
    def load(identity: str) -> Account | None:
        user_id, _, token = identity.partition(":")
        if not user_id.isdigit() or len(user_id) > 18 or not token:
            return None
        return load_account(runtime().db, int(user_id), token)

    @manager.unauthorized_handler
    def unauthorized() -> BaseResponse:
        return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))

    manager.init_app(app)
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME

    @app.before_request
    def first_things_first() -> BaseResponse | None:
        """A password someone else chose is replaced, and two-factor sign-in set up when
        every account must have it, before any other page of the dashboard or simulator."""
        if request.blueprint not in ("dashboard", "simulator") or request.endpoint in ALWAYS_OPEN:
            return None
        if not current_user.is_authenticated:
            return None
        signed_in = account()
        if signed_in.must_change_password:
            wanted = "dashboard.password_change"
        elif runtime().settings.require_2fa and not signed_in.two_factor:
            wanted = "dashboard.two_factor_setup"
        else:
            return None
        return None if request.endpoint == wanted else redirect(url_for(wanted))


def safe_next(target: str | None, default: str) -> str:
    """Where to go after signing in: a path on this site, else `default` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


def attempt_allowed(scope: str, who: str) -> bool:
    """Counts one guess at a secret; False once this address or this account guessed too often.

    Both counters move on every attempt, for accounts that exist and for those that do not,
    so neither spreading guesses over accounts nor over addresses gets around the limits.
    The address is the TCP peer's, or the forwarded one when TRUSTED_PROXIES says so.

    Args:
        scope: what is guessed ("login-account" for passwords, "login-2fa" for codes).
        who: the account the guess is for (an email or an id).
    """
    settings = state().settings
    address = request.remote_addr or "unknown"
    try:
        by_ip = _hit(settings.login_limit_ip, "login-ip", address)
        by_account = _hit(settings.login_limit_account, scope, who.strip().lower())
    except StorageError:
        # The shared counter (Redis) is unreachable: refuse rather than count nothing.
        log.warning("login rate limiter unavailable", exc_info=True)
        abort(503, description="Signing in is unavailable for a moment. Try again shortly.")
    return by_ip and by_account


def _hit(item: RateLimitItem, *keys: str) -> bool:
    return state().limiter.hit(item, *keys)


def _too_many(template: str, form: FlaskForm) -> BaseResponse:
    response = make_response(render_template(template, form=form, error=TOO_MANY))
    response.status_code = 429
    response.headers["Retry-After"] = str(state().settings.login_limit_account.get_expiry())
    return response


def _complete(
    found: Account, next_url: str, detail: dict[str, Any], notice: str | None = None
) -> BaseResponse:
    session.clear()  # nothing from before signing in carries over
    session.permanent = True
    login_user(found)
    if notice:
        flash(notice, "info")
    with runtime().db.write() as db:
        record(db, found.label, "login", {"user_id": found.id, **detail})
    if found.must_change_password:
        flash("Choose your own password before you go on.", "info")
        return redirect(url_for("dashboard.password_change"))
    return redirect(next_url)


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse:
    """The sign-in page."""
    form = LoginForm()
    status = 200
    error = None
    if request.method == "POST":
        if not form.validate_on_submit():
            status, error = 400, "Enter your email and password."
        elif not attempt_allowed("login-account", form.email.data or ""):
            return _too_many("dashboard/login.html", form)
        else:
            found = authenticate(runtime().db, form.email.data or "", form.password.data or "")
            if found is None:
                status, error = 401, "The email or the password is wrong."
            else:
                next_url = safe_next(request.args.get("next"), url_for("dashboard.home"))
                if not found.two_factor:
                    return _complete(found, next_url, {})
                session.clear()
                session[PENDING] = {
                    "identity": found.get_id(),
                    "at": runtime().clock().timestamp(),
                    "next": next_url,
                }
                return redirect(url_for("dashboard.login_two_factor"))
    response = make_response(render_template("dashboard/login.html", form=form, error=error))
    response.status_code = status
    return response


def _pending() -> tuple[int, str, str] | None:
    """The account whose password was right a moment ago: (id, session token, next page)."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None
    user_id, _, token = str(pending.get("identity", "")).partition(":")
    at = pending.get("at")
    if not user_id.isdigit() or not isinstance(at, int | float):
        return None
    if not 0 <= runtime().clock().timestamp() - at <= SECOND_FACTOR_SECONDS:
        return None
    return int(user_id), token, str(pending.get("next") or url_for("dashboard.home"))


@bp.route("/login/two-factor", methods=["GET", "POST"])
def login_two_factor() -> BaseResponse:
    """The second step of signing in: a code from the authenticator app or a recovery code."""
    pending = _pending()
    if pending is None:
        session.pop(PENDING, None)
        if current_user.is_authenticated:
            return redirect(url_for("dashboard.home"))
        flash("Sign in again: the first step has expired.", "info")
        return redirect(url_for("dashboard.login"))
    user_id, token, next_url = pending
    form = SecondFactorForm()
    status, error = 200, None
    if request.method == "POST":
        if not form.validate_on_submit():
            status, error = 400, "Enter the code."
        elif not attempt_allowed("login-2fa", str(user_id)):
            return _too_many("dashboard/login_two_factor.html", form)
        else:
            rt = runtime()
            kind = two_factor.verify(rt.db, user_id, form.code.data or "", rt.clock())
            found = load_account(rt.db, user_id, token) if kind else None
            if found is None:
                status, error = 401, "That code is not right, or it was used already."
            else:
                notice = None
                if kind == "recovery":
                    left = two_factor.recovery_codes_left(rt.db, user_id)
                    notice = f"You used a recovery code: {left} left."
                return _complete(found, next_url, {"second_factor": kind}, notice)
    response = make_response(
        render_template("dashboard/login_two_factor.html", form=form, error=error)
    )
    response.status_code = status
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    """Ends the session (a POST with the CSRF token, never a link)."""
    if current_user.is_authenticated:
        with runtime().db.write() as db:
            record(db, account().label, "logout", {"user_id": account().id})
    logout_user()
    session.clear()
    return redirect(url_for("dashboard.login"))
