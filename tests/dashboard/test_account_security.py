"""Accounts as an attacker meets them: the printed first password, sessions that must end,
and two-factor sign-in (enrolment, codes that work once, recovery codes, the requirement).

These change rows (flags, session versions, used time steps, recovery codes) with
conditional updates, so they run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

import pyotp
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.app import create_app
from bot.cli.run import _first_admin
from bot.cli.users import users
from bot.db.models import AuditEvent, RecoveryCode, User
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from dashboard.accounts import update_user
from tests.dashboard.conftest import Accounts
from tests.dashboard.support import PASSWORD, add_user, csrf_token, sign_in
from tests.support.clock import FakeClock

SETUP = "/dashboard/account/two-factor"
SECOND_STEP = "/dashboard/login/two-factor"
RECOVERY = re.compile(r"<code>([a-z0-9]{4}(?:-[a-z0-9]{4}){3})</code>")


def _user(runtime: Runtime, user_id: int) -> User:
    with runtime.db.read() as session:
        user = session.get(User, user_id)
        assert user is not None
        session.expunge(user)
        return user


def _post(client: FlaskClient, path: str, form_page: str, **data: str):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, form_page), **data})


def _is_signed_in(client: FlaskClient) -> bool:
    response = client.get("/dashboard/conversations")
    assert response.status_code in (200, 302)
    return response.status_code == 200


# --- the first admin's printed password -------------------------------------------------


def test_the_printed_first_password_must_be_changed_before_anything_else(
    app: Flask, runtime: Runtime, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _first_admin(settings)
    printed = re.search(r"password: (\S+)", capsys.readouterr().out)
    assert printed is not None
    first = printed.group(1)
    client = app.test_client()
    signed = sign_in(client, "admin@example.org", first)
    assert signed.status_code == 302 and signed.location == "/dashboard/account/password"
    # Every page, the simulator too, sends to the change-password page until it is done.
    for path in ("/dashboard/", "/dashboard/users", "/dashboard/account", SETUP, "/simulator/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.location == "/dashboard/account/password", path
    form = "/dashboard/account/password"
    refusals = [
        ({"current": first, "new": first, "confirm": first}, b"must differ from the old one"),
        ({"current": first, "new": "short", "confirm": "short"}, b"at least 10 characters"),
        ({"current": first, "new": "a good new one", "confirm": "another one!"}, b"differ"),
        ({"current": "not it at all", "new": "a good new one", "confirm": "a good new one"},
         b"current password is wrong"),
    ]  # fmt: skip
    for fields, reason in refusals:
        refused = _post(client, form, form, **fields)
        assert refused.status_code == 400 and reason in refused.data, fields
    changed = _post(
        client, form, form, current=first, new="my own pass phrase", confirm="my own pass phrase"
    )
    assert changed.status_code == 303
    assert client.get("/dashboard/users").status_code == 200  # this session goes on
    with runtime.db.read() as session:
        admin = session.scalar(select(User).where(User.email == "admin@example.org"))
        assert admin is not None and admin.must_change_password is False
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "password_changed" in actions
    assert sign_in(app.test_client(), "admin@example.org", first).status_code == 401


def test_passwords_an_admin_sets_must_be_changed_too(
    app: Flask,
    runtime: Runtime,
    accounts: Accounts,
    as_role: Callable[[str], FlaskClient],
    env: dict[str, str],
) -> None:
    admin = as_role("admin")
    page = f"/dashboard/users/{accounts.mobilizer}"
    fields = {"role": "mobilizer", "name": "Mob", "groups": "ward-3", "active": "y"}
    reset = _post(admin, page, page, **fields, phone="", password="given by admin")
    assert reset.status_code == 303
    assert _user(runtime, accounts.mobilizer).must_change_password is True
    client = app.test_client()
    assert sign_in(client, "mob@example.org", "given by admin").location == (
        "/dashboard/account/password"
    )
    assert client.get("/dashboard/contacts").location == "/dashboard/account/password"
    created = _post(
        admin, "/dashboard/users", "/dashboard/users",
        email="new@example.org", role="coordinator", password="given by admin",
    )  # fmt: skip
    assert created.status_code == 303
    with runtime.db.read() as session:
        new = session.scalar(select(User).where(User.email == "new@example.org"))
        assert new is not None and new.must_change_password is True
    cli = CliRunner(env=env).invoke(
        users, ["set-password", "coord@example.org", "--password", "reset by the operator"]
    )
    assert cli.exit_code == 0, cli.output
    assert _user(runtime, accounts.coordinator).must_change_password is True


# --- sessions that end -------------------------------------------------------------------


def test_sign_out_everywhere_and_password_changes_end_other_sessions(
    app: Flask,
    runtime: Runtime,
    accounts: Accounts,
    as_role: Callable[[str], FlaskClient],
) -> None:
    here, elsewhere = as_role("mobilizer"), as_role("mobilizer")
    assert _is_signed_in(here) and _is_signed_in(elsewhere)
    account_page = here.get("/dashboard/account").get_data(as_text=True)
    assert "Sign out everywhere" in account_page
    out = _post(here, "/dashboard/account/sign-out-everywhere", "/dashboard/account")
    assert out.status_code == 303 and out.location == "/dashboard/login"
    assert not _is_signed_in(elsewhere) and not _is_signed_in(here)

    # An admin ends someone else's sessions.
    coordinator = as_role("coordinator")
    admin = as_role("admin")
    page = f"/dashboard/users/{accounts.coordinator}"
    assert _post(admin, f"{page}/sign-out", page).status_code == 303
    assert not _is_signed_in(coordinator)
    assert _is_signed_in(admin)

    # Changing one's password keeps this session and ends the others.
    here, elsewhere = as_role("mobilizer"), as_role("mobilizer")
    form = "/dashboard/account/password"
    changed = _post(
        here, form, form, current=PASSWORD, new="a fresh password", confirm="a fresh password"
    )
    assert changed.status_code == 303
    assert _is_signed_in(here) and not _is_signed_in(elsewhere)

    # A disabled account enabled again does not bring its old sessions back.
    old = as_role("coordinator")
    update_user(runtime.db, accounts.coordinator, active=False)
    update_user(runtime.db, accounts.coordinator, active=True)
    assert not _is_signed_in(old)
    assert _is_signed_in(as_role("coordinator"))
    with runtime.db.read() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"signed_out_everywhere", "user_signed_out", "password_changed"} <= actions


# --- two-factor sign-in ------------------------------------------------------------------


def _code(secret: str, clock: FakeClock) -> str:
    return pyotp.TOTP(secret).at(int(clock().timestamp()))


def _enrol(client: FlaskClient, clock: FakeClock) -> tuple[str, list[str]]:
    """Turns two-factor sign-in on from the enrolment page; the secret and recovery codes."""
    page = client.get(SETUP).get_data(as_text=True)
    found = re.search(r"Key: <code>([A-Z2-7 ]+)</code>", page)
    assert found is not None
    secret = found.group(1).replace(" ", "")
    assert "otpauth://totp/Community%20info%20line:" in page
    assert f"secret={secret}" in page
    assert 'src="data:image/svg+xml' in page  # the QR code: an image, no script, no style
    wrong = _post(
        client, SETUP, SETUP, code="000000" if _code(secret, clock) != "000000" else "111111"
    )
    assert wrong.status_code == 400
    done = _post(client, SETUP, SETUP, code=_code(secret, clock))
    assert done.status_code == 200
    codes = RECOVERY.findall(done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def test_two_factor_sign_in_codes_work_once(
    app: Flask,
    runtime: Runtime,
    clock: FakeClock,
    accounts: Accounts,
    as_role: Callable[[str], FlaskClient],
    all_logs: pytest.LogCaptureFixture,
) -> None:
    client, before = as_role("coordinator"), as_role("coordinator")
    secret, codes = _enrol(client, clock)
    assert _is_signed_in(client)
    assert not _is_signed_in(before)  # sessions from before enrolment had no second factor

    # The password alone opens nothing: it leads to the code step.
    fresh = app.test_client()
    first = sign_in(fresh, "coord@example.org", PASSWORD)
    assert first.status_code == 302 and first.location == SECOND_STEP
    assert not _is_signed_in(fresh)
    # The enrolment code's time step is used up; a wrong code is refused too.
    assert _post(fresh, SECOND_STEP, SECOND_STEP, code=_code(secret, clock)).status_code == 401
    assert _post(fresh, SECOND_STEP, SECOND_STEP, code="12345x").status_code == 401
    clock.advance(30)
    code = _code(secret, clock)
    accepted = _post(fresh, SECOND_STEP, SECOND_STEP, code=code)
    assert accepted.status_code == 302 and accepted.location == "/dashboard/"
    assert _is_signed_in(fresh)

    # An overheard code, replayed within its window by someone who has the password.
    thief = app.test_client()
    assert sign_in(thief, "coord@example.org", PASSWORD).location == SECOND_STEP
    assert _post(thief, SECOND_STEP, SECOND_STEP, code=code).status_code == 401
    assert not _is_signed_in(thief)

    # A recovery code works once.
    lost_phone = app.test_client()
    sign_in(lost_phone, "coord@example.org", PASSWORD)
    recovered = _post(lost_phone, SECOND_STEP, SECOND_STEP, code=codes[0].upper())
    assert recovered.status_code == 302
    assert "9 left" in lost_phone.get("/dashboard/").get_data(as_text=True)
    again = app.test_client()
    sign_in(again, "coord@example.org", PASSWORD)
    assert _post(again, SECOND_STEP, SECOND_STEP, code=codes[0]).status_code == 401
    assert not _is_signed_in(again)

    # The second step expires: an old first step is no use later.
    late = app.test_client()
    sign_in(late, "coord@example.org", PASSWORD)
    clock.advance(301)
    expired = _post(late, SECOND_STEP, "/dashboard/login", code=_code(secret, clock))
    assert expired.status_code == 302 and expired.location == "/dashboard/login"
    assert not _is_signed_in(late)

    with runtime.db.read() as session:
        stored = session.scalars(select(RecoveryCode.code_hash)).all()
        audit = session.scalars(select(AuditEvent.detail)).all()
    assert len(stored) == 10 and not set(codes) & set(stored)  # kept hashed
    assert secret not in all_logs.text and secret not in repr(audit)
    assert not any(c in all_logs.text for c in codes)


@pytest.mark.parametrize("settings_overrides", [{"LOGIN_LIMIT_PER_ACCOUNT": "3 per 15 minutes"}])
def test_second_factor_guesses_are_limited_like_passwords(
    app: Flask, clock: FakeClock, as_role: Callable[[str], FlaskClient], accounts: Accounts
) -> None:
    secret, _ = _enrol(as_role("mobilizer"), clock)
    # Enrolling checked two codes, which count too: the guesses below start from none.
    state = app.extensions["dashboard"]
    state.limiter.clear(state.settings.login_limit_account, "login-2fa", str(accounts.mobilizer))
    clock.advance(30)
    client = app.test_client()
    assert sign_in(client, "mob@example.org", PASSWORD).location == SECOND_STEP
    right = _code(secret, clock)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(3):
        assert _post(client, SECOND_STEP, SECOND_STEP, code=wrong).status_code == 401
    limited = _post(client, SECOND_STEP, SECOND_STEP, code=right)  # even the right code
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert not _is_signed_in(client)


def test_turning_two_factor_off_needs_the_password_and_admins_can_reset_it(
    app: Flask,
    runtime: Runtime,
    clock: FakeClock,
    accounts: Accounts,
    as_role: Callable[[str], FlaskClient],
) -> None:
    client = as_role("mobilizer")
    _enrol(client, clock)
    off = "/dashboard/account/two-factor/off"
    _post(client, off, "/dashboard/account", password="not my password")
    assert _user(runtime, accounts.mobilizer).totp_enabled_at is not None
    new_codes = _post(
        client,
        "/dashboard/account/two-factor/recovery-codes",
        "/dashboard/account",
        password=PASSWORD,
    )
    assert len(RECOVERY.findall(new_codes.get_data(as_text=True))) == 10
    _post(client, off, "/dashboard/account", password=PASSWORD)
    assert _user(runtime, accounts.mobilizer).totp_secret is None
    _enrol(client, clock)
    admin = as_role("admin")
    page = f"/dashboard/users/{accounts.mobilizer}"
    assert _post(admin, f"{page}/two-factor/reset", page).status_code == 303
    user = _user(runtime, accounts.mobilizer)
    assert user.totp_secret is None and user.totp_enabled_at is None
    assert not _is_signed_in(client)
    with runtime.db.read() as session:
        assert session.scalars(select(RecoveryCode)).all() == []


def test_two_factor_can_be_required_for_every_account(
    env: dict[str, str], clock: FakeClock, password_hash: str
) -> None:
    settings = Settings.from_mapping(env | {"REQUIRE_2FA": "true"})
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    try:
        app = create_app(settings, runtime)
        app.config["TESTING"] = True
        add_user(runtime.db, "coord@example.org", "coordinator", password_hash)
        client = app.test_client()
        assert sign_in(client, "coord@example.org", PASSWORD).status_code == 302
        for path in (
            "/dashboard/",
            "/dashboard/conversations",
            "/dashboard/account",
            "/simulator/",
        ):
            response = client.get(path)
            assert response.status_code == 302 and response.location == SETUP, path
        assert b"Every account here signs in with a code" in client.get(SETUP).data
        _enrol(client, clock)
        assert _is_signed_in(client)
        _post(client, "/dashboard/account/two-factor/off", "/dashboard/account", password=PASSWORD)
        with runtime.db.read() as session:
            user = session.scalar(select(User))
            assert user is not None and user.totp_enabled_at is not None
    finally:
        runtime.close()
