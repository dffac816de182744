"""Twilio's webhook signatures: the Auth Token by default, a SharedKey when Twilio says so.

The expected signatures are computed here from Twilio's description (base64 of the HMAC of
the URL followed by the sorted form fields' names and values), not by the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import pytest
from sqlalchemy import func, select

from bot.channels.twilio.signatures import signed
from bot.db.models import Message
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import AUTH_TOKEN, twilio_form
from tests.support.phone import MESSAGES_PATH

URL = "https://bot.example.org" + MESSAGES_PATH
STATUS_PATH = "/webhooks/twilio/status"
KEY = "sk_secret_current_0123456789abcdef"
OLD_KEY = "sk_secret_previous_fedcba9876543210"
KEY_ID = "webhooks_sharedkey_01JD8Q0Z6V4E5R8Y2M3N4P5Q6R"


def twilio_signature(url: str, form: dict[str, str], secret: str, digest=hashlib.sha1) -> str:  # type: ignore[no-untyped-def]
    text = url + "".join(name + form[name] for name in sorted(form))
    mac = hmac.new(secret.encode(), text.encode(), digest)
    return base64.b64encode(mac.digest()).decode()


def settings_header(algorithm: str = "HMAC_SHA256") -> str:
    return f"key={KEY_ID},algorithm={algorithm}"


def stored(runtime: Runtime) -> int:
    with runtime.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Message)) or 0)


# -- the check itself ---------------------------------------------------------------------


def test_without_the_settings_header_only_the_auth_token_signs() -> None:
    form = twilio_form("hi")
    by_token = twilio_signature(URL, form, AUTH_TOKEN)
    assert signed(URL, form, by_token, None, AUTH_TOKEN, (KEY,))
    assert signed(URL, form, by_token, "  ", AUTH_TOKEN, (KEY,))  # blank: no header
    by_key = twilio_signature(URL, form, KEY)
    assert not signed(URL, form, by_key, None, AUTH_TOKEN, (KEY,))
    assert not signed(URL, form, by_token, None, None, (KEY,))  # no token: nothing passes
    assert not signed(URL, form, "", None, AUTH_TOKEN, ())


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [("HMAC_SHA256", hashlib.sha256), ("HMAC_SHA1", hashlib.sha1), ("hmac_sha256", hashlib.sha256)],
)
def test_with_the_settings_header_the_shared_keys_sign_with_its_algorithm(
    algorithm: str, digest
) -> None:  # type: ignore[no-untyped-def]
    form = twilio_form("namaste")
    signature = twilio_signature(URL, form, KEY, digest)
    assert signed(URL, form, signature, settings_header(algorithm), AUTH_TOKEN, (KEY,))
    # The same secret, the other hash: refused.
    other = hashlib.sha1 if digest is hashlib.sha256 else hashlib.sha256
    wrong = twilio_signature(URL, form, KEY, other)
    assert not signed(URL, form, wrong, settings_header(algorithm), AUTH_TOKEN, (KEY,))


def test_the_settings_header_does_not_let_the_auth_token_in() -> None:
    form = twilio_form("hi")
    for digest, algorithm in ((hashlib.sha1, "HMAC_SHA1"), (hashlib.sha256, "HMAC_SHA256")):
        by_token = twilio_signature(URL, form, AUTH_TOKEN, digest)
        assert not signed(URL, form, by_token, settings_header(algorithm), AUTH_TOKEN, (KEY,))


def test_while_a_key_is_rotated_both_sign() -> None:
    form = twilio_form("hi")
    keys = (KEY, OLD_KEY)
    for secret in keys:
        signature = twilio_signature(URL, form, secret, hashlib.sha256)
        assert signed(URL, form, signature, settings_header(), None, keys)
        assert not signed(
            URL, form, signature, settings_header(), None, ({KEY: OLD_KEY, OLD_KEY: KEY}[secret],)
        )


def test_the_url_with_or_without_its_port_and_nothing_else() -> None:
    form = twilio_form("hi")
    with_port = "https://bot.example.org:443" + MESSAGES_PATH
    assert signed(URL, form, twilio_signature(with_port, form, AUTH_TOKEN), None, AUTH_TOKEN, ())
    assert signed(with_port, form, twilio_signature(URL, form, AUTH_TOKEN), None, AUTH_TOKEN, ())
    elsewhere = "https://bot.example.org:8443" + MESSAGES_PATH
    assert not signed(
        URL, form, twilio_signature(elsewhere, form, AUTH_TOKEN), None, AUTH_TOKEN, ()
    )
    tampered = dict(form, Body="STOP")
    assert not signed(URL, tampered, twilio_signature(URL, form, AUTH_TOKEN), None, AUTH_TOKEN, ())


def test_strange_signatures_urls_and_algorithms_are_refused_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    form = twilio_form("hi")
    good = twilio_signature(URL, form, AUTH_TOKEN)
    assert not signed(URL, form, "sïgnätürę≠" + good, None, AUTH_TOKEN, ())
    assert not signed(URL, form, "\udcff", None, AUTH_TOKEN, ())
    assert not signed("https://bot.example.org:port/x", form, good, None, AUTH_TOKEN, ())
    with caplog.at_level(logging.WARNING, logger="bot.channels.twilio.signatures"):
        by_key = twilio_signature(URL, form, KEY, hashlib.sha256)
        assert not signed(URL, form, by_key, settings_header("HMAC_SHA512"), None, (KEY,))
    assert "HMAC_SHA512" in caplog.text


# -- settings ---------------------------------------------------------------------------


def test_the_setting_takes_secrets_separated_by_commas_and_hides_them(env) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_mapping(env | {"TWILIO_WEBHOOK_SHARED_KEYS": f" {KEY} , {OLD_KEY} "})
    assert settings.twilio_webhook_shared_keys == (KEY, OLD_KEY)
    assert KEY not in repr(settings)
    assert Settings.from_mapping(env).twilio_webhook_shared_keys == ()
    with pytest.raises(SettingsError, match="TWILIO_WEBHOOK_SHARED_KEYS"):
        Settings.from_mapping(env | {"TWILIO_WEBHOOK_SHARED_KEYS": f"{KEY},,{OLD_KEY}"})


# -- through the webhooks -----------------------------------------------------------------


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {"TWILIO_WEBHOOK_SHARED_KEYS": f"{KEY},{OLD_KEY}"}


def test_a_message_signed_with_a_shared_key_is_stored_and_answered(
    client, runtime: Runtime, twilio: FakeTwilio
) -> None:  # type: ignore[no-untyped-def]
    form = twilio_form("HELP", "+9779812345670")
    headers = {
        "X-Twilio-Signature": twilio_signature(URL, form, OLD_KEY, hashlib.sha256),
        "X-Twilio-Webhooks-Signature-Settings": settings_header(),
    }
    response = client.post(MESSAGES_PATH, data=form, headers=headers)
    assert response.status_code == 200
    assert stored(runtime) == 2  # the message and its reply
    [sent] = twilio.sent
    assert sent.form["To"] == "+9779812345670"


def test_a_status_report_signed_with_a_shared_key_is_taken(
    client, runtime: Runtime, twilio: FakeTwilio
) -> None:  # type: ignore[no-untyped-def]
    form = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    url = "https://bot.example.org" + STATUS_PATH
    headers = {
        "X-Twilio-Signature": twilio_signature(url, form, KEY, hashlib.sha256),
        "X-Twilio-Webhooks-Signature-Settings": settings_header(),
    }
    assert client.post(STATUS_PATH, data=form, headers=headers).status_code == 200
    headers["X-Twilio-Signature"] = twilio_signature(url, form, AUTH_TOKEN, hashlib.sha256)
    assert client.post(STATUS_PATH, data=form, headers=headers).status_code == 403


def test_forged_shared_key_signatures_are_refused_and_nothing_stored(
    client, runtime: Runtime, twilio: FakeTwilio
) -> None:  # type: ignore[no-untyped-def]
    form = twilio_form("STOP")
    for signature in (
        twilio_signature(URL, form, "not-our-key", hashlib.sha256),
        twilio_signature(URL, form, AUTH_TOKEN, hashlib.sha1),  # the token, header or not
        twilio_signature(URL, dict(form, Body="START"), KEY, hashlib.sha256),
        "",
    ):
        headers = {
            "X-Twilio-Signature": signature,
            "X-Twilio-Webhooks-Signature-Settings": settings_header(),
        }
        assert client.post(MESSAGES_PATH, data=form, headers=headers).status_code == 403
    assert stored(runtime) == 0
    assert twilio.calls == []


def test_without_shared_keys_a_shared_key_webhook_is_refused_and_the_log_says_why(
    env, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.channels.twilio import signatures
    from bot.queue import make_huey

    signatures._warned.clear()
    settings = Settings.from_mapping(env)
    rt = Runtime(settings, huey=make_huey(settings, immediate=True))
    try:
        client = create_app(settings, rt).test_client()
        form = twilio_form("hi")
        headers = {
            "X-Twilio-Signature": twilio_signature(URL, form, KEY, hashlib.sha256),
            "X-Twilio-Webhooks-Signature-Settings": settings_header(),
        }
        with caplog.at_level(logging.WARNING, logger="bot.channels.twilio.signatures"):
            for _ in range(3):
                assert client.post(MESSAGES_PATH, data=form, headers=headers).status_code == 403
        warnings = [r for r in caplog.records if "TWILIO_WEBHOOK_SHARED_KEYS" in r.getMessage()]
        assert len(warnings) == 1  # once a minute, not once a request
        assert stored(rt) == 0
    finally:
        rt.close()
