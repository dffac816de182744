"""Signing in: hashed passwords, rate limits, sessions that end, safe redirects, cookies.

Most of this does not depend on the database and runs on SQLite only (`sqlite_site`); the
account rules that do run on both databases.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.app import create_app
from bot.cli.users import users
from bot.db.models import AuditEvent, User
from bot.runtime import Runtime
from bot.settings import Settings
from dashboard.accounts import AccountError, create_user, set_password, update_user
from dashboard.login import safe_next
from tests.dashboard.conftest import Site
from tests.dashboard.support import PASSWORD, csrf_token


def sign_in(client: FlaskClient, email: str, password: str, next_url: str = ""):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/dashboard/login")
    path = "/dashboard/login" + (f"?next={next_url}" if next_url else "")
    return client.post(path, data={"csrf_token": token, "email": email, "password": password})


def test_sign_in_and_out(sqlite_site: Site) -> None:
    client = sqlite_site.app.test_client()
    response = sign_in(client, "Coord@Example.org ", PASSWORD, "/dashboard/feedback")
    assert response.status_code == 302
    assert response.location == "/dashboard/feedback"
    assert client.get("/dashboard/feedback").status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with sqlite_site.runtime.db.read() as session:
        user = session.get(User, sqlite_site.accounts.coordinator)
        assert user is not None and user.last_login_at is not None
        assert user.password_hash and user.password_hash.startswith("scrypt:")
        actions = session.scalars(select(AuditEvent.action)).all()
    assert actions == ["login"]
    client.post("/dashboard/logout", data={"csrf_token": csrf_token(client)})
    assert client.get("/dashboard/feedback").status_code == 302
    # Wrong passwords and unknown accounts get the same answer.
    wrong = sign_in(client, "coord@example.org", "not the password")
    unknown = sign_in(client, "nobody@example.org", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    for answer in (wrong, unknown):
        assert b"The email or the password is wrong." in answer.data
    assert sign_in(client, "", "").status_code == 400


@pytest.mark.parametrize(
    "settings_overrides",
    [{"LOGIN_LIMIT_PER_ACCOUNT": "3 per 15 minutes", "LOGIN_LIMIT_PER_IP": "6 per 5 minutes"}],
)
def test_sign_in_attempts_are_limited_per_account_and_per_address(sqlite_site: Site) -> None:
    client = sqlite_site.app.test_client()
    for _ in range(3):
        assert sign_in(client, "coord@example.org", "guess").status_code == 401
    limited = sign_in(client, "coord@example.org", PASSWORD)  # even the right password
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert b"Too many sign-in attempts" in limited.data
    # Other accounts from the same address: two attempts left for the address.
    assert sign_in(client, "admin@example.org", PASSWORD).status_code == 302
    other = sqlite_site.app.test_client()
    assert sign_in(other, "mob@example.org", "guess").status_code == 401
    assert sign_in(other, "mob9@example.org", PASSWORD).status_code == 429


def test_changing_the_password_or_disabling_ends_sessions(sqlite_site: Site) -> None:
    db, accounts = sqlite_site.runtime.db, sqlite_site.accounts
    client = sqlite_site.app.test_client()
    assert sign_in(client, "mob@example.org", PASSWORD).status_code == 302
    assert client.get("/dashboard/conversations").status_code == 200
    set_password(db, accounts.mobilizer, "a brand new password")
    assert client.get("/dashboard/conversations").status_code == 302
    assert sign_in(client, "mob@example.org", "a brand new password").status_code == 302
    update_user(db, accounts.mobilizer, active=False)
    assert client.get("/dashboard/conversations").status_code == 302
    assert sign_in(client, "mob@example.org", "a brand new password").status_code == 401


def test_after_signing_in_only_local_paths() -> None:
    for target in (
        "https://evil.example/x",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\nSet-Cookie:x",
        "",
        None,
    ):
        assert safe_next(target, "/dashboard/") == "/dashboard/", target
    assert safe_next("/dashboard/contacts?group=ward-3", "/") == "/dashboard/contacts?group=ward-3"


def test_headers_cookies_and_the_simulator_guard(sqlite_site: Site) -> None:
    response = sqlite_site.client("coordinator").get("/dashboard/conversations")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["Cache-Control"] == "no-store"
    login = sqlite_site.client("anonymous").get("/dashboard/login")
    assert "unsafe-inline" not in login.headers["Content-Security-Policy"]
    # Once there are accounts, the simulator needs one (any role).
    assert sqlite_site.client("anonymous").get("/simulator/").status_code == 302
    assert sqlite_site.client("mobilizer").get("/simulator/").status_code == 200
    production = Settings.from_mapping(
        {
            "DATABASE_URL": sqlite_site.runtime.settings.database_url,
            "VAR_DIR": str(sqlite_site.runtime.settings.var_dir),
            "SECRET_KEY": "production-secret-key-0123",
            "BOT_ENV": "production",
            "PUBLIC_URL": "http://bot.local",
        }
    )
    app = create_app(production, sqlite_site.runtime)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_users_command_creates_the_first_admin(runtime: Runtime, env: dict[str, str]) -> None:
    cli = CliRunner(env=env)
    created = cli.invoke(
        users,
        ["create", "--role", "admin", "Boss@Example.org", "--name", "Boss"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert created.exit_code == 0, created.output
    assert "created admin boss@example.org" in created.output
    listed = cli.invoke(users, ["list"])
    assert "boss@example.org\tadmin\tactive" in listed.output
    again = cli.invoke(
        users,
        ["create", "--role", "admin", "boss@example.org"],
        env={"BOT_USER_PASSWORD": PASSWORD},
    )
    assert again.exit_code != 0 and "already an account" in again.output
    short = cli.invoke(
        users, ["create", "--role", "coordinator", "c@example.org", "--password", "x"]
    )
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    assert cli.invoke(users, ["set-groups", "boss@example.org", "ward-1", "ward-2"]).exit_code == 0
    refused = cli.invoke(users, ["set-role", "boss@example.org", "coordinator"])
    assert refused.exit_code != 0 and "no active admin" in refused.output
    assert cli.invoke(users, ["disable", "nobody@example.org"]).exit_code != 0
    with runtime.db.read() as session:
        assert session.scalar(select(User.role).where(User.email == "boss@example.org")) == "admin"


def test_the_last_admin_cannot_be_removed(runtime: Runtime) -> None:
    admin = create_user(runtime.db, "only@example.org", "admin", PASSWORD)
    with pytest.raises(AccountError, match="no active admin"):
        update_user(runtime.db, admin, role="coordinator")
    with pytest.raises(AccountError, match="no active admin"):
        update_user(runtime.db, admin, active=False)
    create_user(runtime.db, "second@example.org", "admin", PASSWORD, phone="9811111111")
    update_user(runtime.db, admin, role="coordinator")
    with pytest.raises(AccountError, match="already has the phone"):
        create_user(runtime.db, "third@example.org", "mobilizer", PASSWORD, phone="+9779811111111")
    with pytest.raises(AccountError, match="not a group name"):
        create_user(runtime.db, "fourth@example.org", "mobilizer", PASSWORD, groups=["<x>"])
