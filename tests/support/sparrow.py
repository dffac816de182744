"""Sparrow SMS in tests: its fake API as a fixture, the settings that enable it, and a phone
that texts the service through the short code (transcript tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from testkit.fake_sparrow import FakeSparrow

SPARROW_TOKEN = "sparrow-test-token"
SPARROW_FROM = "TheAlert"
INBOUND_TOKEN = "inbound-secret-0123456789abcdef"
SHORT_CODE = "34001"
INBOUND_PATH = f"/webhooks/sparrow/{INBOUND_TOKEN}/inbound"


@pytest.fixture
def sparrow() -> Iterator[FakeSparrow]:
    """The local Sparrow-compatible API, started and stopped per test (a fixture the
    conftests that need it import)."""
    server = FakeSparrow(token=SPARROW_TOKEN).start()
    yield server
    server.stop()


def sparrow_settings(api_base: str) -> dict[str, str]:
    """The settings that enable Sparrow against the local fake at `api_base`."""
    return {
        "SPARROW_TOKEN": SPARROW_TOKEN,
        "SPARROW_FROM": SPARROW_FROM,
        "SPARROW_API_BASE": api_base,
        "SPARROW_INBOUND_TOKEN": INBOUND_TOKEN,
    }


def sparrow_params(text: str, sender: str, **extra: str) -> dict[str, str]:
    """The query Sparrow sends for an SMS to the short code (docs: from, to, text, keyword)."""
    keyword = text.split()[0] if text.split() else ""
    return {"from": sender, "to": SHORT_CODE, "text": text, "keyword": keyword, **extra}


class SparrowPhone:
    """One person's basic phone in Nepal: `send` a text to the short code, get the replies."""

    def __init__(self, client: FlaskClient, sparrow: FakeSparrow, number: str) -> None:
        self.client = client
        self.sparrow = sparrow
        self.number = number  # E.164, +977 and 10 digits
        self.national = number.removeprefix("+977")
        self._seen = 0

    def deliver(self, text: str, **extra: str):  # type: ignore[no-untyped-def]
        """Sparrow's GET for one SMS; returns the response."""
        return self.client.get(
            INBOUND_PATH, query_string=sparrow_params(text, self.national, **extra)
        )

    def send(self, text: str, **extra: str) -> list[str]:
        """Sends `text` and returns the texts the bot sent back to this phone through Sparrow."""
        response = self.deliver(text, **extra)
        assert response.status_code == 200, response.data
        assert response.data == b""  # the replies go out through the send API
        return self.replies()

    def replies(self) -> list[str]:
        """Replies to this phone that reached the Sparrow API since the last call."""
        mine = [c.form["text"] for c in self.sparrow.sent if c.form.get("to") == self.national]
        new, self._seen = mine[self._seen :], len(mine)
        return new
