"""The sign-in limiter as an attacker meets it: forged X-Forwarded-For headers, guesses
spread over addresses or over accounts (real or not), a proxy in front, several processes.

The limiter and the proxy handling do not depend on the database: SQLite only.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from bot.app import create_app
from bot.settings import Settings, SettingsError
from tests.dashboard.conftest import Site
from tests.dashboard.support import PASSWORD, sign_in

REDIS_URL = "redis://127.0.0.1:6379/0"


def _limited(site: Site, per_account: str, per_address: str, **env: str) -> Flask:
    """The site's application again, with these sign-in limits (LOGIN_LIMIT_PER_*)."""
    return _site_with(
        site, LOGIN_LIMIT_PER_ACCOUNT=per_account, LOGIN_LIMIT_PER_IP=per_address, **env
    )


def _attempt(
    client: FlaskClient,
    email: str,
    password: str = "a wrong guess",  # noqa: S107 - a guess, not a secret
    remote: str = "198.51.100.7",
    forwarded: str | None = None,
) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = sign_in(
        client, email, password, headers=headers, environ_base={"REMOTE_ADDR": remote}
    )
    return int(response.status_code)


def _site_with(site: Site, **env: str) -> Flask:
    """The site's application again, built with more settings (same database, runtime)."""
    base = site.runtime.settings
    settings = Settings.from_mapping(
        {
            "DATABASE_URL": base.database_url,
            "VAR_DIR": str(base.var_dir),
            "SECRET_KEY": "test-secret-key-0123456789",
            **env,
        }
    )
    app = create_app(settings, site.runtime)
    app.config["TESTING"] = True
    return app


def test_a_forged_forwarded_for_does_not_reset_the_address_limit(sqlite_site: Site) -> None:
    client = _limited(sqlite_site, "100 per 15 minutes", "3 per 5 minutes").test_client()
    for n in range(3):
        # A new "address" and a new (unknown) account every time: neither counter resets.
        assert _attempt(client, f"nobody{n}@example.org", forwarded=f"203.0.113.{n}") == 401
    assert _attempt(client, "coord@example.org", PASSWORD, forwarded="203.0.113.99") == 429


def test_behind_a_trusted_proxy_each_client_has_its_own_count(sqlite_site: Site) -> None:
    # Without TRUSTED_PROXIES every request seems to come from the proxy (10.0.0.1): one
    # guesser would lock everybody out. With it, the proxy's X-Forwarded-For names the client.
    app = _limited(sqlite_site, "100 per 15 minutes", "3 per 5 minutes", TRUSTED_PROXIES="1")
    attacker, colleague = app.test_client(), app.test_client()
    proxy = "10.0.0.1"
    for n in range(3):
        assert _attempt(attacker, f"x{n}@example.org", remote=proxy, forwarded="203.0.113.5") == 401
    # The attacker writes their own X-Forwarded-For; the proxy appends the real address.
    forged = "192.0.2.77, 203.0.113.5"
    assert _attempt(attacker, "coord@example.org", remote=proxy, forwarded=forged) == 429
    assert _attempt(colleague, "coord@example.org", PASSWORD, proxy, "203.0.113.6") == 302


def test_both_limits_hold_for_accounts_that_exist_and_those_that_do_not(
    sqlite_site: Site,
) -> None:
    client = _limited(sqlite_site, "3 per 15 minutes", "100 per 5 minutes").test_client()
    for email in ("coord@example.org", "ghost@example.org"):
        # Guesses spread over addresses still count against the account.
        answers = [_attempt(client, email, remote=f"198.51.100.{n}") for n in range(4)]
        assert answers == [401, 401, 401, 429], email
    assert _attempt(client, "Coord@Example.org ", PASSWORD, remote="198.51.100.200") == 429


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable: {exc}")


def test_two_processes_share_the_count_in_redis(sqlite_site: Site) -> None:
    _redis_or_skip()
    first, second = (
        _limited(sqlite_site, "3 per 15 minutes", "100 per 5 minutes", REDIS_URL=REDIS_URL)
        for _ in range(2)
    )
    # Keys of their own, so runs (and other tests on this Redis) do not meet.
    email = f"ghost-{uuid.uuid4().hex[:12]}@example.org"
    address = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    one, two = first.test_client(), second.test_client()
    try:
        assert _attempt(one, email, remote=address) == 401
        assert _attempt(two, email, remote=address) == 401
        assert _attempt(one, email, remote=address) == 401
        assert _attempt(two, email, remote=address) == 429
    finally:
        state = first.extensions["dashboard"]
        state.limiter.clear(state.settings.login_limit_account, "login-account", email)
        state.limiter.clear(state.settings.login_limit_ip, "login-ip", address)


def test_two_processes_share_the_count_without_redis(sqlite_site: Site) -> None:
    """`make run` starts two web processes: without Redis they count sign-in attempts in
    one file of the machine's (VAR_DIR/login-limits.db), not each in its memory."""
    first, second = (_limited(sqlite_site, "3 per 15 minutes", "100 per 5 minutes") for _ in "12")
    one, two = first.test_client(), second.test_client()
    email = "ghost@example.org"
    assert _attempt(one, email) == 401
    assert _attempt(two, email) == 401
    assert _attempt(one, email) == 401
    assert _attempt(two, email) == 429
    assert _attempt(one, email) == 429
    assert (sqlite_site.runtime.settings.var_dir / "login-limits.db").exists()


def test_an_unreachable_limiter_store_refuses_with_503_not_500(sqlite_site: Site) -> None:
    app = _site_with(sqlite_site, REDIS_URL="redis://127.0.0.1:1/0")
    response = sign_in(app.test_client(), "coord@example.org", PASSWORD)
    assert response.status_code == 503
    assert b"unavailable for a moment" in response.data


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRUSTED_PROXIES", "-1"),
        ("TRUSTED_PROXIES", "all"),
        ("TRUSTED_PROXIES", "11"),
        ("REQUIRE_2FA", "perhaps"),
    ],
)
def test_security_settings_are_checked(name: str, value: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping({"VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 32, name: value})
    defaults = Settings.from_mapping({"VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 32})
    assert defaults.trusted_proxies == 0 and defaults.require_2fa is False
