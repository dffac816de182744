"""The Flask application factory."""

from __future__ import annotations

import atexit
import logging

from flask import Flask, Response, jsonify, redirect, url_for
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.runtime import Runtime
from bot.settings import Settings, load_settings

MAX_REQUEST_BYTES = 256 * 1024


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Builds the web application.

    Args:
        settings: the deployment's settings; read from the environment when omitted.
        runtime: the wired service (tests pass their own, with fakes at the edges).
    """
    settings = settings or (runtime.settings if runtime else load_settings())
    if runtime is None:
        # The web process: queue notifications leave the webhook's path (see Runtime).
        runtime = Runtime(settings, deferred_enqueue=True)
        atexit.register(runtime.close)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.public_url and settings.public_url.startswith("https")),
    )
    app.extensions["bot"] = runtime
    if settings.trusted_proxies:
        # Behind N proxies the client's address, scheme and host come from the X-Forwarded-*
        # headers the last N hops added; without this setting those headers are ignored (any
        # client can write them), so the login limiter counts the real TCP peer.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n
        )

    from bot.channels.registry import webhooks

    # Every installed provider's webhook, enabled or not: each refuses callers (403) until
    # its secret is set (TWILIO_AUTH_TOKEN, SPARROW_INBOUND_TOKEN...).
    for blueprint in webhooks():
        app.register_blueprint(blueprint)
    if settings.simulator_enabled:
        from bot.simulator.views import bp as simulator_bp

        app.register_blueprint(simulator_bp)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    from bot.ops import init_app as init_ops

    init_ops(app)

    from dashboard import init_app as init_dashboard

    init_dashboard(app, runtime, settings)

    @app.get("/")
    def index() -> WerkzeugResponse:
        # The dashboard sends anyone not signed in on to its login page.
        return redirect(url_for("dashboard.home"))

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:",
        )
        return response

    if not app.debug:
        logging.getLogger("bot").setLevel(logging.INFO)
    return app
