"""The dashboard's sessions: Flask's signed cookies, with the signer made once per key.

Flask builds a new serializer for every request (its constructor serializes an empty dict to
learn its output type), provider webhooks included, which carry no cookie at all: about a
twentieth of a webhook's time in the web process (issue 15). The serializer holds no state
between calls, so one per set of keys serves every thread; a changed SECRET_KEY or
SECRET_KEY_FALLBACKS makes a new one.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class CookieSessions(SecureCookieSessionInterface):
    """Signed-cookie sessions whose signing serializer is made once per set of keys."""

    def __init__(self) -> None:
        self._made: tuple[tuple[object, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        made = self._made
        if made is None or made[0] != keys:
            made = (keys, super().get_signing_serializer(app))
            self._made = made  # one tuple, swapped whole: safe to read from any thread
        return made[1]
