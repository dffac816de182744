"""What every dashboard response gets: error pages, security headers."""

from __future__ import annotations

from typing import Any

from flask import Response, render_template, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from dashboard.blueprint import bp
from dashboard.contacts_import import MAX_BYTES

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


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge) -> Any:
    """A request over the size limit: say what the limit is (never the form, it is unread)."""
    if request.endpoint == "dashboard.contacts_import" and current_user.is_authenticated:
        megabytes = MAX_BYTES // (1024 * 1024)
        message = f"The file is too large: a contacts file may have at most {megabytes} MB."
    else:
        kilobytes = (request.max_content_length or 0) // 1024
        message = f"The request is too large: at most {kilobytes} KB may be sent here."
    return render_template("dashboard/error.html", code=413, error=message), 413


@bp.after_request
def headers(response: Response) -> Response:
    """A strict Content-Security-Policy; personal pages are never cached."""
    response.headers["Content-Security-Policy"] = CSP
    if current_user.is_authenticated:
        response.headers.setdefault("Cache-Control", "no-store")
    return response
