"""The dashboard's cookie sessions: one signer per set of keys, and keys still decide."""

from __future__ import annotations

from flask import Flask, session

from dashboard.sessions import CookieSessions


def _app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "first-secret-key-of-sixteen"
    app.session_interface = CookieSessions()

    @app.post("/remember/<word>")
    def remember(word: str) -> str:
        session["word"] = word
        return "ok"

    @app.get("/recall")
    def recall() -> str:
        return str(session.get("word", "nothing"))

    return app


def test_one_signer_serves_every_request_until_the_key_changes() -> None:
    app = _app()
    interface = app.session_interface
    first = interface.get_signing_serializer(app)
    assert first is not None
    assert interface.get_signing_serializer(app) is first
    app.secret_key = "second-secret-key-of-sixteen"
    second = interface.get_signing_serializer(app)
    assert second is not first
    app.config["SECRET_KEY_FALLBACKS"] = ["first-secret-key-of-sixteen"]
    assert interface.get_signing_serializer(app) not in (first, second)


def test_a_session_outlives_requests_and_not_a_new_key() -> None:
    app = _app()
    client = app.test_client()
    assert client.get("/recall").text == "nothing"
    client.post("/remember/namaste")
    assert client.get("/recall").text == "namaste"
    app.secret_key = "another-secret-key-entirely"
    assert client.get("/recall").text == "nothing"  # signed with the old key: not trusted
    app.config["SECRET_KEY_FALLBACKS"] = ["first-secret-key-of-sixteen"]
    client.post("/remember/dhanyabad")
    assert client.get("/recall").text == "dhanyabad"


def test_without_a_secret_key_there_is_no_session_to_sign() -> None:
    app = _app()
    app.secret_key = None
    assert app.session_interface.get_signing_serializer(app) is None
