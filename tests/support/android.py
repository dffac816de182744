"""People who text the service through a pool of Android gateway phones, for transcript tests."""

from __future__ import annotations

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from testkit.fake_android import FakeAndroidPhone, Webhook

EVENTS_PATH = "/webhooks/android/events"
SHARED_KEY = "shared-signing-key-0123"
PASSWORD = "phone-password"


def phones_setting(phones: list[FakeAndroidPhone], own_keys: bool = True) -> str:
    """ANDROID_GATEWAY_PHONES for these fakes, named p1, p2, ... (each with its own signing
    key, or all with the shared one)."""
    entries = []
    for index, phone in enumerate(phones, start=1):
        key = f",{phone.signing_key}" if own_keys else ""
        entries.append(f"p{index}={phone.url},{phone.username},{phone.password}{key}")
    return ";".join(entries)


def post(client: FlaskClient, webhook: Webhook) -> TestResponse:
    """Posts a webhook the app signed to our URL, as the app does."""
    return client.post(EVENTS_PATH, data=webhook.body, headers=webhook.headers)


class AndroidPerson:
    """One person's phone texting a phone of the pool (`via`); replies may come from any."""

    def __init__(
        self, client: FlaskClient, phones: list[FakeAndroidPhone], number: str, via: int = 0
    ) -> None:
        self.client = client
        self.phones = phones
        self.number = number  # E.164
        self.via = phones[via]
        self._seen = 0

    def deliver(self, text: str) -> TestResponse:
        """The gateway phone's `sms:received` webhook for `text`; returns our response."""
        return post(self.client, self.via.received(text, self.number))

    def send(self, text: str) -> list[str]:
        """Sends `text`; returns the texts the pool's phones sent back to this person."""
        response = self.deliver(text)
        assert response.status_code == 200, response.data
        return self.replies()

    def received_all(self) -> list[str]:
        """Everything any phone of the pool sent to this person, in the order taken."""
        texts = []
        for phone in self.phones:
            texts += [m for m in phone.accepted if m.to == self.number]
        return [m.text for m in sorted(texts, key=lambda m: m.states["Pending"])]

    def replies(self) -> list[str]:
        """Replies to this person since the last call."""
        mine = self.received_all()
        new, self._seen = mine[self._seen :], len(mine)
        return new
