"""The Rasa client: parsing, fail-fast cool-down, recovery, several servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.core.understanding import NluUnavailable
from nlu.client import RasaClient, parse_response
from testkit.fake_rasa import FakeRasa


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    server = FakeRasa().start()
    yield server
    server.stop()


def test_parse_returns_intent_and_ranking(rasa: FakeRasa) -> None:
    # Sent spelled as the training data is (issue 13): "k" is "ke", "xa" is "chha".
    rasa.answers["ke ho"] = [("faq_meaning", 0.7), ("faq_steps", 0.2)]
    understanding = RasaClient([rasa.url]).parse("k ho")
    assert understanding.intent == "faq_meaning"
    assert understanding.confidence == pytest.approx(0.7)
    assert [c.intent for c in understanding.ranking] == ["faq_meaning", "faq_steps"]


def test_down_server_fails_fast_then_recovers(rasa: FakeRasa) -> None:
    clock = Clock()
    client = RasaClient([rasa.url], timeout=0.2, cooldown=5, clock=clock)
    rasa.delay = 0.5  # slower than the timeout
    with pytest.raises(NluUnavailable):
        client.parse("hello")
    rasa.delay = 0
    calls = len(rasa.calls)
    with pytest.raises(NluUnavailable):  # cooling down: Rasa is not even asked
        client.parse("hello")
    assert len(rasa.calls) == calls
    clock.now += 6
    assert client.parse("hello").intent == "out_of_scope"


def test_5xx_counts_as_down(rasa: FakeRasa) -> None:
    rasa.status = 500
    with pytest.raises(NluUnavailable):
        RasaClient([rasa.url]).parse("x")


def test_requests_go_round_robin_and_around_a_dead_server(rasa: FakeRasa) -> None:
    second = FakeRasa().start()
    try:
        client = RasaClient([rasa.url, second.url])
        for i in range(4):
            client.parse(f"m{i}")
        assert len(rasa.calls) == 2 and len(second.calls) == 2
        dead = RasaClient(["http://127.0.0.1:9", second.url], timeout=0.2)
        for i in range(3):
            assert dead.parse(f"n{i}").intent == "out_of_scope"
    finally:
        second.stop()


def test_malformed_answers_are_rejected() -> None:
    with pytest.raises(ValueError):
        parse_response({"text": "x"})
    assert parse_response({"intent": {"name": None, "confidence": 0}}).intent is None


def test_the_client_sends_the_token_a_guarded_rasa_requires(rasa: FakeRasa) -> None:
    """Issue 12: Rasa runs with --auth-token; without `?token=` it answers 401."""
    rasa.token = "rasa-token-0123456789"
    rasa.answers["ke ho"] = [("faq_meaning", 0.7)]
    with pytest.raises(NluUnavailable):
        RasaClient([rasa.url]).parse("k ho")
    assert rasa.refused == 1
    with pytest.raises(NluUnavailable):
        RasaClient([rasa.url], token="not-the-token-012345").parse("k ho")
    assert rasa.refused == 2
    understanding = RasaClient([rasa.url], token="rasa-token-0123456789").parse("k ho")
    assert understanding.intent == "faq_meaning" and rasa.refused == 2


def test_parses_reuse_one_kept_alive_connection(
    rasa: FakeRasa, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection per call would cost the worker a TCP handshake per message."""
    accepted = []
    get_request = rasa.server.get_request

    def counting() -> Any:
        accepted.append(1)
        return get_request()

    monkeypatch.setattr(rasa.server, "get_request", counting)
    client = RasaClient([rasa.url])
    for i in range(5):
        assert client.parse(f"q{i}").intent == "out_of_scope"
    assert len(rasa.calls) == 5 and len(accepted) == 1


def test_a_path_prefix_and_the_token_reach_the_server(rasa: FakeRasa) -> None:
    """Rasa behind a proxy's path (`RASA_URL=http://host/rasa`) keeps its prefix."""
    paths: list[str] = []
    handler: Any = rasa.server.RequestHandlerClass
    original = handler.do_POST

    def recording(self: Any) -> None:
        paths.append(self.path)
        original(self)

    handler.do_POST = recording
    try:
        RasaClient([f"{rasa.url}/rasa/"], token="t0k").parse("hello")
    finally:
        handler.do_POST = original
    assert paths == ["/rasa/model/parse?token=t0k"]


def test_healthy_counts_the_servers_that_answer(rasa: FakeRasa) -> None:
    assert RasaClient([rasa.url, "http://127.0.0.1:9"], timeout=0.2).healthy() == 1
    rasa.status = 503
    assert RasaClient([rasa.url]).healthy() == 0
