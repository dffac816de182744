"""The coordinators' and mobilizers' web dashboard (Flask blueprint, login and roles).

`init_app` mounts it on the service's application: the blueprint at /dashboard, Flask-Login,
CSRF protection on every form (the providers' webhooks authenticate their callers instead), and
the login guard in front of the simulator.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from bot.channels.registry import webhooks
from bot.db.models import User
from bot.runtime import Runtime
from bot.settings import Settings


def init_app(app: Flask, runtime: Runtime, settings: Settings | None = None) -> None:
    """Mounts the dashboard on `app`.

    Args:
        app: the service's Flask application (webhooks, simulator already registered).
        runtime: the wired service the pages read and write through.
        settings: the application's settings, the dashboard's included (the runtime's when
            omitted).
    """
    from dashboard import views  # noqa: F401 - registers the routes on the blueprint
    from dashboard.blueprint import DashboardState, bp
    from dashboard.login import init_login, make_limiter
    from dashboard.sessions import CookieSessions
    from dashboard.templating import install_filters

    settings = settings or runtime.settings
    app.extensions["dashboard"] = DashboardState(settings, make_limiter(settings))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.production or app.config["SESSION_COOKIE_SECURE"]),
        # A token lasts as long as the session it belongs to (12 hours), not one hour: a
        # coordinator may leave a reply half-written over lunch.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.session_interface = CookieSessions()
    init_login(app)
    _allow_uploads(app)  # before CSRFProtect reads the form under the application's limit
    csrf = CSRFProtect(app)
    for webhook in webhooks():
        csrf.exempt(webhook)  # each provider's webhook authenticates its caller itself
    if "simulator" in app.blueprints:
        csrf.exempt(app.blueprints["simulator"])  # checks its own per-session token
        _guard_simulator(app, settings)
    install_filters(app, settings.zone)
    app.register_blueprint(bp)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> tuple[str, int]:
        return render_template("dashboard/error.html", code=400, error=error.description), 400

    @app.context_processor
    def endpoints() -> dict[str, Any]:
        # Optional parts (the simulator) are linked only when they are mounted.
        return {"dashboard_endpoints": frozenset(app.view_functions)}


def _allow_uploads(app: Flask) -> None:
    """Raises the request size limit for the views marked `accepts_upload` (signed in only)."""

    def allow() -> None:
        view = app.view_functions.get(request.endpoint or "")
        limit = getattr(view, "max_request_bytes", None)
        if limit and current_user.is_authenticated:
            request.max_content_length = limit

    app.before_request(allow)


def _guard_simulator(app: Flask, settings: Settings) -> None:
    """The simulator needs a signed-in account (any role) once the dashboard has one.

    Before the first account exists (`bot users create --role admin EMAIL`) a fresh
    installation's simulator stays open, as `make run` promises; in production it always
    needs an account.
    """
    state: dict[str, bool] = {"accounts": False}

    def accounts_exist(runtime: Runtime) -> bool:
        if not state["accounts"]:
            with runtime.db.read() as session:
                state["accounts"] = session.scalar(select(User.id).limit(1)) is not None
        return state["accounts"]

    def guard() -> BaseResponse | None:
        runtime: Runtime = app.extensions["bot"]
        if current_user.is_authenticated:
            return None
        if settings.production or accounts_exist(runtime):
            manager = app.login_manager  # type: ignore[attr-defined]
            response: BaseResponse = manager.unauthorized()
            return response
        return None

    app.before_request_funcs.setdefault("simulator", []).append(guard)
