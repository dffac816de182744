"""The test suite cannot reach the internet, even by mistake."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.conftest import OutsideNetworkCall


def test_a_connection_outside_loopback_fails_loudly() -> None:
    with socket.socket() as sock, pytest.raises(OutsideNetworkCall):
        sock.connect(("203.0.113.7", 80))


def test_outside_names_are_not_resolved() -> None:
    with pytest.raises(OutsideNetworkCall):
        socket.getaddrinfo("api.twilio.com", 443)


def test_libraries_are_stopped_too() -> None:
    with pytest.raises((OutsideNetworkCall, requests.ConnectionError)) as caught:
        requests.get("https://api.twilio.com/2010-04-01", timeout=1)
    assert "tests never" in str(caught.value)


def test_loopback_still_works() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1):
            pass
