"""Sparrow's inbound URL: authentication, malformed requests, repeated deliveries."""

from __future__ import annotations

import dataclasses
from ipaddress import ip_network

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import create_app
from bot.channels.sparrow.settings import SparrowSettings
from bot.db.models import Contact, Message
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_sparrow import FakeSparrow
from tests.support.builders import new_phone
from tests.support.clock import FakeClock
from tests.support.sparrow import INBOUND_PATH, SparrowPhone, sparrow_params


def stored(runtime: Runtime) -> tuple[int, int]:
    with runtime.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Contact)) or 0,
            s.scalar(select(func.count()).select_from(Message)) or 0,
        )


def test_a_forged_path_token_is_refused_and_nothing_stored(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    params = sparrow_params("HELP", "9800000001")
    for path in (
        "/webhooks/sparrow/wrong-token-0123456789abcdef/inbound",
        INBOUND_PATH.replace("inbound-secret", "inbound-secreT"),
        "/webhooks/sparrow/x/inbound",
    ):
        assert client.get(path, query_string=params).status_code == 403
    assert stored(runtime) == (0, 0)


def test_without_an_inbound_token_setting_everything_is_refused(
    client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    own = runtime.settings.provider("sparrow", SparrowSettings)
    assert own is not None and own.inbound_token
    unset = dataclasses.replace(own, inbound_token=None)
    monkeypatch.setattr(runtime, "settings", runtime.settings.with_provider("sparrow", unset))
    assert (
        client.get(INBOUND_PATH, query_string=sparrow_params("HELP", "9800000001")).status_code
        == 403
    )
    assert stored(runtime) == (0, 0)


@pytest.fixture
def allow_listed(env: dict[str, str], settings_overrides: dict[str, str], clock: FakeClock):  # type: ignore[no-untyped-def]
    """A deployment behind one proxy that accepts Sparrow's calls only from 203.0.113.0/24."""
    settings = Settings.from_mapping(
        env
        | settings_overrides
        | {"SPARROW_ALLOWED_IPS": "203.0.113.0/24, 2001:db8::1", "TRUSTED_PROXIES": "1"}
    )
    rt = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    yield rt, create_app(settings, rt).test_client()
    rt.close()


def test_the_source_address_allow_list(allow_listed, sparrow: FakeSparrow) -> None:  # type: ignore[no-untyped-def]
    runtime, client = allow_listed
    own = runtime.settings.provider("sparrow", SparrowSettings)
    assert own is not None and own.allowed_ips[0] == ip_network("203.0.113.0/24")
    params = sparrow_params("HELP", "9800000002")
    outside = client.get(
        INBOUND_PATH, query_string=params, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    no_header = client.get(INBOUND_PATH, query_string=params)  # the proxy's own address
    assert (outside.status_code, no_header.status_code) == (403, 403)
    assert stored(runtime) == (0, 0)
    inside = client.get(
        INBOUND_PATH, query_string=params, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert inside.status_code == 200
    assert stored(runtime) == (1, 2) and len(sparrow.sent) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"to": "34001", "text": "HELP"},  # no sender
        {"from": "", "text": "HELP"},
        {"from": "not-a-number", "text": "HELP"},
        {"from": "12", "text": "HELP"},
        {"from": "9800000003", "text": "x" * 5000},
        {"from": "9" * 80, "text": "HELP"},
    ],
)
def test_malformed_requests_are_400_and_nothing_stored(client, runtime: Runtime, params) -> None:  # type: ignore[no-untyped-def]
    assert client.get(INBOUND_PATH, query_string=params).status_code == 400
    assert stored(runtime) == (0, 0)


def test_a_repeated_delivery_is_stored_and_answered_once(
    sparrow_phone: SparrowPhone, runtime: Runtime, arrival_clock: list[float]
) -> None:
    arrival_clock.append(1_900_000_001.0)
    assert sparrow_phone.send("HELP")
    arrival_clock.append(1_900_000_004.0)  # Sparrow tries again three seconds later
    assert sparrow_phone.send("HELP") == []
    assert stored(runtime) == (1, 2)


def test_an_id_sent_by_sparrow_is_used_for_duplicates(
    sparrow_phone: SparrowPhone, runtime: Runtime
) -> None:
    assert sparrow_phone.send("HELP", id="4242")
    assert sparrow_phone.send("HELP", id="4242") == []  # a minute later, the same id
    assert sparrow_phone.send("HELP", id="4243")
    with runtime.db.read() as s:
        sids = s.scalars(select(Message.provider_sid).where(Message.direction == "in")).all()
    assert sorted(sids) == ["sparrow:4242", "sparrow:4243"]


def test_numbers_with_the_country_code_are_the_same_contact(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    number = new_phone()
    for sender in (number.removeprefix("+"), number.removeprefix("+977"), number):
        response = client.get(INBOUND_PATH, query_string=sparrow_params("hi", sender))
        assert response.status_code == 200
    with runtime.db.read() as s:
        assert s.scalars(select(Contact.phone)).all() == [number]


def test_post_is_accepted_too(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    assert client.post(INBOUND_PATH, data=sparrow_params("HELP", "9800000004")).status_code == 200
    assert stored(runtime) == (1, 2)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(["from", "to", "text", "keyword", "id", "extra"]),
        st.text(max_size=40),
        max_size=6,
    )
)
def test_random_input_never_crashes(client, params: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    response = client.get(INBOUND_PATH, query_string=params)
    assert response.status_code in (200, 400)
