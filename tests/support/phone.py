"""A phone that talks to the service through signed Twilio webhooks, for transcript tests."""

from __future__ import annotations

from flask.testing import FlaskClient

from testkit.fake_twilio import FakeTwilio
from tests.support.builders import BASE_URL, new_phone, sign, twilio_form

MESSAGES_PATH = "/webhooks/twilio/messages"


def post_signed(client: FlaskClient, path: str, form: dict[str, str], url: str | None = None):  # type: ignore[no-untyped-def]
    """POSTs `form` with the signature Twilio would compute for `url` (default: this path)."""
    signature = sign(url or f"{BASE_URL}{path}", form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


class Phone:
    """One community member's phone: `send` a text, get back the bot's replies to it."""

    def __init__(
        self,
        client: FlaskClient,
        twilio: FakeTwilio,
        number: str | None = None,
        whatsapp: bool = False,
    ) -> None:
        self.client = client
        self.twilio = twilio
        self.number = number or new_phone()
        self.address = f"whatsapp:{self.number}" if whatsapp else self.number
        self._seen = 0

    def send(self, body: str, **extra: str) -> list[str]:
        """Sends `body` and returns the texts the bot sent back to this phone."""
        response = post_signed(self.client, MESSAGES_PATH, twilio_form(body, self.address, **extra))
        assert response.status_code == 200, response.data
        return self.replies()

    def replies(self) -> list[str]:
        """Replies to this phone that arrived since the last call."""
        mine = [c.form["Body"] for c in self.twilio.sent if c.form.get("To") == self.address]
        new, self._seen = mine[self._seen :], len(mine)
        return new
