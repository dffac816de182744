"""Signing in and out: Flask-Login sessions, rate-limited attempts per address and account."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, make_response, redirect, render_template, request, session, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, RateLimiter
from werkzeug.wrappers import Response as BaseResponse
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from bot.settings import Settings
from dashboard.accounts import Account, authenticate, load_account
from dashboard.audit import record
from dashboard.blueprint import account, bp, runtime, state

SESSION_LIFETIME = timedelta(hours=12)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=200)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def make_limiter(settings: Settings) -> RateLimiter:
    """Counts login attempts in memory, or in Redis when REDIS_URL is set (all processes)."""
    url = settings.redis_url
    if url is None:
        return MovingWindowRateLimiter(storage_from_string("memory://"))
    if url.startswith("unix://"):
        url = "redis+unix://" + url[len("unix://") :]
    return MovingWindowRateLimiter(storage_from_string(url))


def init_login(app: Flask) -> None:
    """Installs Flask-Login with the dashboard's account loader and login page."""
    manager = LoginManager()
    manager.login_view = "dashboard.login"
    manager.login_message = "Please sign in to see this page."
    manager.login_message_category = "info"
    manager.session_protection = "basic"

    @manager.user_loader
    def load(identity: str) -> Account | None:
        user_id, _, token = identity.partition(":")
        if not user_id.isdigit() or not token:
            return None
        return load_account(runtime().db, int(user_id), token)

    @manager.unauthorized_handler
    def unauthorized() -> BaseResponse:
        return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))

    manager.init_app(app)
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME


def safe_next(target: str | None, default: str) -> str:
    """Where to go after signing in: a path on this site, else `default` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


def _allowed(email: str) -> bool:
    """Counts this attempt; False once the address or the account has tried too often."""
    limiter = state().limiter
    config = state().config
    address = request.remote_addr or "unknown"
    by_ip = limiter.hit(config.login_limit_ip, "login-ip", address)
    by_account = limiter.hit(config.login_limit_account, "login-account", email.strip().lower())
    return by_ip and by_account


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse:
    """The sign-in page."""
    form = LoginForm()
    status = 200
    error = None
    if request.method == "POST":
        if not form.validate_on_submit():
            status, error = 400, "Enter your email and password."
        elif not _allowed(form.email.data or ""):
            status, error = 429, "Too many sign-in attempts. Wait a few minutes and try again."
        else:
            found = authenticate(runtime().db, form.email.data or "", form.password.data or "")
            if found is None:
                status, error = 401, "The email or the password is wrong."
            else:
                next_url = safe_next(request.args.get("next"), url_for("dashboard.home"))
                session.clear()  # nothing from before signing in carries over
                session.permanent = True
                login_user(found)
                with runtime().db.write() as db:
                    record(db, found.label, "login", {"user_id": found.id})
                return redirect(next_url)
    response = make_response(render_template("dashboard/login.html", form=form, error=error))
    response.status_code = status
    if status == 429:
        response.headers["Retry-After"] = str(state().config.login_limit_account.get_expiry())
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
