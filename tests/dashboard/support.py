"""Builders and fakes for the dashboard tests: accounts, signed-in clients, a model server."""

from __future__ import annotations

import json
import re
import shlex
import sys
from http.server import BaseHTTPRequestHandler

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.db.database import Database
from bot.db.models import Contact, ContactGroup, User, UserGroup, utcnow
from dashboard.accounts import session_identity
from testkit.servers import LoopbackServer

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
# Settings (the `settings_overrides` fixture) under which a retraining started by a walk
# over the routes fails at once instead of running Rasa.
FAILING_TRAINER = {"NLU_TRAIN_COMMAND": shlex.join([sys.executable, "-c", "raise SystemExit(3)"])}


def add_user(
    db: Database,
    email: str,
    role: str,
    password_hash: str,
    groups: tuple[str, ...] = (),
    phone: str | None = None,
) -> int:
    """Stores an account with a precomputed hash (scrypt is slow on purpose)."""
    with db.write() as session:
        user = User(
            email=email,
            name=email.split("@")[0].title(),
            role=role,
            phone=phone,
            password_hash=password_hash,
            active=True,
            created_at=utcnow(),
        )
        session.add(user)
        session.flush()
        session.add_all(UserGroup(user_id=user.id, group_name=g) for g in groups)
        return user.id


def signed_in(app: Flask, db: Database, user_id: int | None) -> FlaskClient:
    """A test client whose session is that account's (None: anonymous)."""
    client = app.test_client()
    if user_id is None:
        return client
    with db.read() as session:
        user = session.get(User, user_id)
        assert user is not None
        identity = session_identity(user)
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = identity
        flask_session["_fresh"] = True
    return client


def csrf_token(client: FlaskClient, path: str = "/dashboard/conversations") -> str:
    """The CSRF token of the client's session, read from a page's form."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def contact_id(db: Database, phone: str) -> int:
    """The id of the (real) contact with this number."""
    with db.read() as session:
        found = session.scalar(
            select(Contact.id).where(Contact.phone == phone, Contact.simulated.is_(False))
        )
    assert found is not None, phone
    return int(found)


def tag(db: Database, contact: int, *groups: str) -> None:
    """Puts a contact in groups."""
    with db.write() as session:
        session.add_all(ContactGroup(contact_id=contact, group_name=g) for g in groups)


class FakeModelServer(LoopbackServer):
    """Rasa's `PUT /model` on 127.0.0.1: records the model files it was asked to load."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.loaded: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/model" and fake.status < 300:
                    fake.loaded.append(body["model_file"])
                self.send_response(fake.status if self.path == "/model" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.listen(Handler)


# A stand-in for `rasa train nlu`: logs like Rasa, checks its input, writes the model file.
FAKE_TRAINER = """
import pathlib, sys, time
nlu, out, name, outcome = sys.argv[1:5]
text = pathlib.Path(nlu).read_text(encoding="utf-8")
print("training on", text.count("- "), "examples", flush=True)
for component in ("WhitespaceTokenizer", "CountVectorsFeaturizer", "LogisticRegression"):
    print(f"INFO hooks - Finished training component '{component}'.", flush=True)
    time.sleep(0.02)
if outcome == "fail":
    print("ValueError: something went wrong", flush=True)
    sys.exit(1)
pathlib.Path(out, name + ".tar.gz").write_text(text, encoding="utf-8")
"""


def sign_in(client: FlaskClient, email: str, password: str, **kwargs: object):  # type: ignore[no-untyped-def]
    """Posts the login form (with the session's CSRF token); `kwargs` go to `client.post`."""
    token = csrf_token(client, "/dashboard/login")
    return client.post(
        "/dashboard/login",
        data={"csrf_token": token, "email": email, "password": password},
        **kwargs,  # type: ignore[arg-type]
    )
