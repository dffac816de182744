"""The dashboard blueprint and what every view shares: roles, the runtime, small parsers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, abort, current_app, request
from flask_login import current_user
from limits.strategies import RateLimiter

from bot.runtime import Runtime
from bot.settings import Settings
from dashboard.accounts import Account

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
)

F = TypeVar("F", bound=Callable[..., Any])
PAGE_SIZE = 50


@dataclass
class DashboardState:
    """The dashboard's per-application objects (app.extensions["dashboard"])."""

    settings: Settings  # the application's (create_app's), the dashboard's settings included
    limiter: RateLimiter
    trainer: Any = None  # dashboard.retrain.Trainer, built on first use
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict)


def state() -> DashboardState:
    """This application's dashboard state."""
    return cast(DashboardState, current_app.extensions["dashboard"])


def runtime() -> Runtime:
    """The wired service (database, queue, flows)."""
    return cast(Runtime, current_app.extensions["bot"])


def account() -> Account:
    """The signed-in account (views behind `requires` only)."""
    return cast(Account, current_user._get_current_object())


def requires(*roles: str) -> Callable[[F], F]:
    """Lets in signed-in accounts with one of `roles`; others get the login page or a 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if roles and account().role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return cast(F, guarded)

    return decorate


def accepts_upload(max_bytes: int) -> Callable[[F], F]:
    """Lets requests to this view carry up to `max_bytes` (the application's limit is sized
    for webhooks). Applied before the CSRF check reads the form, for signed-in accounts only;
    a bigger request is a 413 naming the limit."""

    def decorate(view: F) -> F:
        view.max_request_bytes = max_bytes  # type: ignore[attr-defined]
        return view

    return decorate


def arg_int(name: str, default: int | None = None, minimum: int = 0) -> int | None:
    """An integer query argument; anything malformed is a 400."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or len(raw) > 18:
        abort(400, description=f"{name} must be a whole number")
    value = int(raw)
    if value < minimum:
        abort(400, description=f"{name} must be at least {minimum}")
    return value


def arg_date(name: str) -> date | None:
    """A YYYY-MM-DD query argument; anything malformed is a 400."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, description=f"{name} must be a date like 2026-11-01")


def arg_choice(name: str, choices: tuple[str, ...] | frozenset[str]) -> str | None:
    """A query argument that must be one of `choices` (or empty)."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if raw not in choices:
        abort(400, description=f"{name} must be one of {', '.join(sorted(choices))}")
    return raw
