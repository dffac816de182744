"""Random webhook input never crashes the service and never stores half a message."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.db.models import Message
from bot.runtime import Runtime
from tests.support.builders import twilio_form
from tests.support.phone import MESSAGES_PATH, post_signed

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
senders = st.one_of(
    text,
    st.from_regex(r"\+9779[78]\d{8}", fullmatch=True),
    st.from_regex(r"whatsapp:\+9779[78]\d{8}", fullmatch=True),
)
extra_fields = st.dictionaries(
    st.sampled_from(
        ["NumMedia", "MediaUrl0", "ProfileName", "WaId", "ButtonPayload", "Junk", "Body"]
    ),
    text,
    max_size=4,
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=text,
    sender=senders,
    extra=extra_fields,
    drop=st.sets(st.sampled_from(["From", "MessageSid", "Body"])),
)
def test_random_forms(
    client, runtime: Runtime, body: str, sender: str, extra: dict[str, str], drop: set[str]
) -> None:  # type: ignore[no-untyped-def]
    form = twilio_form(body, sender, **extra)
    for name in drop:
        form.pop(name, None)
    with runtime.db.read() as s:
        before = s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    response = post_signed(client, MESSAGES_PATH, form)
    assert response.status_code in (200, 400), response.data
    with runtime.db.read() as s:
        after = s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))
        if response.status_code == 200:
            stored = s.scalars(
                select(Message).where(Message.provider_sid == form["MessageSid"])
            ).one()
            assert stored.status == "processed"
            assert stored.body == form.get("Body", "").replace("\x00", "")
    assert after == before + (1 if response.status_code == 200 else 0)


def test_invalid_utf8_is_400_and_stores_nothing(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    from tests.support.builders import BASE_URL, sign

    form = twilio_form("x")
    signature = sign(f"{BASE_URL}{MESSAGES_PATH}", form)
    raw = "&".join(f"{k}={v}" for k, v in form.items() if k != "Body").encode() + b"&Body=%ff%fe"
    response = client.post(
        MESSAGES_PATH,
        data=raw,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code in (400, 403)
    with runtime.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def test_sql_and_script_payloads_are_stored_as_text(client, runtime: Runtime, twilio) -> None:  # type: ignore[no-untyped-def]
    payloads = [
        "'; DROP TABLE messages; --",
        "<script>alert(document.cookie)</script>",
        '=HYPERLINK("http://evil")',
        "\u202eevil\u202c",
    ]
    for payload in payloads:
        assert post_signed(client, MESSAGES_PATH, twilio_form(payload)).status_code == 200
    with runtime.db.read() as s:
        bodies = s.scalars(select(Message.body).where(Message.direction == "in")).all()
    assert sorted(bodies) == sorted(payloads)
    assert len(twilio.sent) == len(payloads)


def _row_counts(runtime: Runtime) -> tuple[int, ...]:
    from bot.db.models import Contact, MessageStatusEvent

    with runtime.db.read() as s:
        return tuple(
            int(s.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Contact, Message, MessageStatusEvent)
        )


status_fields = st.fixed_dictionaries(
    {},
    optional={
        "MessageSid": st.one_of(text, st.from_regex(r"SM[0-9a-f]{32}", fullmatch=True)),
        "MessageStatus": st.one_of(
            text, st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed", "read"])
        ),
        "ErrorCode": st.one_of(text, st.sampled_from(["21610", "63016", "30003", "-1", "1e9"])),
        "AccountSid": text,
        "Junk": text,
    },
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(form=status_fields)
def test_random_status_callbacks(client, runtime: Runtime, form: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    response = post_signed(client, "/webhooks/twilio/status", form)
    assert response.status_code in (200, 400), response.data


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from([MESSAGES_PATH, "/webhooks/twilio/status"]),
    body=text,
    # What a header can carry (HTTP has no line breaks in a header value).
    signature=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126))),
    # Twilio's SharedKey header, which names the algorithm (bot/channels/twilio/signatures.py).
    signature_settings=st.one_of(
        st.none(),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
        st.builds(
            "key=webhooks_sharedkey_x,algorithm={}".format,
            st.sampled_from(["HMAC_SHA256", "hmac_sha1", "HMAC_SHA512", "", "none"]),
        ),
    ),
)
def test_unsigned_or_forged_webhooks_store_nothing(
    client,
    runtime: Runtime,
    path: str,
    body: str,
    signature: str | None,
    signature_settings: str | None,
) -> None:  # type: ignore[no-untyped-def]
    """An outsider without the auth token gets 403 (or 400 for a malformed request), never
    a 500, and nothing is stored: no contact, no message, no status report."""
    before = _row_counts(runtime)
    form = twilio_form(body) | {"MessageStatus": "delivered"}
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    if signature_settings is not None:
        headers["X-Twilio-Webhooks-Signature-Settings"] = signature_settings
    response = client.post(path, data=form, headers=headers)
    assert response.status_code in (400, 403), response.data
    assert _row_counts(runtime) == before


def test_a_new_long_provider_status_is_stored_not_a_503(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    """Found by the status fuzz test: a status longer than the column gave PostgreSQL a
    DataError and Twilio a 503. Twilio adds statuses without notice."""
    from bot.db.models import MessageStatusEvent

    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "partially_delivered"}
    assert post_signed(client, "/webhooks/twilio/status", form).status_code == 200
    with runtime.db.read() as s:
        assert s.scalars(select(MessageStatusEvent.status)).all() == ["partially_delivered"]
