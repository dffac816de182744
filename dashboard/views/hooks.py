"""What every dashboard response gets: error pages, security headers."""

from __future__ import annotations

from typing import Any

from flask import Response, render_template
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from dashboard.blueprint import bp

# Scripts and styles only from this site; forms only post here; never framed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Any:
    """4xx pages in the dashboard's layout, with the reason."""
    if error.code is None or error.code < 400 or error.response is not None:
        return error
    page = render_template("dashboard/error.html", code=error.code, error=error.description)
    return page, error.code


@bp.after_request
def headers(response: Response) -> Response:
    """A strict Content-Security-Policy; personal pages are never cached."""
    response.headers["Content-Security-Policy"] = CSP
    if current_user.is_authenticated:
        response.headers.setdefault("Cache-Control", "no-store")
    return response
