"""The channels bench/run_load.py drives `bot run` through, each as its provider would.

A channel here is: its fake provider in a process of its own (answering each send after the
API delay, and listing what it took with the time it took it, `GET /_received`), the
settings a production user gives `bot run` for it, its inbound webhook exactly as the
provider delivers it, and the replies its fake received (recipient in E.164, epoch time,
text).

- **twilio**: signed form POSTs to `/webhooks/twilio/messages` (testkit/load.py), replies at
  testkit/fake_twilio.py.
- **sparrow**: Sparrow's GET with `from` (the 10-digit national number), `to` (the short
  code), `text` and `keyword` to `/webhooks/sparrow/<SPARROW_INBOUND_TOKEN>/inbound`
  (bot/channels/sparrow/webhook.py), replies through the send API at testkit/fake_sparrow.py.
- **android**: a pool of phones served by one testkit/fake_android.py process, each with its
  own signing key (the app's default); each inbound SMS reaches one phone (in turn), which
  posts the signed `sms:received` event (HMAC-SHA256 over body + `X-Timestamp`) to
  `/webhooks/android/events`; replies are what the phones took. The pool's pace
  (ANDROID_GATEWAY_PACE, segments per minute per phone) paces replies too: it is set
  explicitly (`pace`).

Every request is prepared (encoded, signed) before the clock starts, and sent open loop on
schedule whatever the answers, as testkit/load.py does for Twilio.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl

from bench.webhook_load import ACCOUNT, ACCOUNT_SID, AUTH_TOKEN
from testkit.fake_android import FakeAndroidPhone
from testkit.load import Outcome, Planned, send
from testkit.servers import FakeProcess

NAMES = ("twilio", "sparrow", "android")
# Sparrow: the account's API token, its sender identity, the secret in the inbound URL.
SPARROW_TOKEN = "bench-sparrow-token"
SPARROW_FROM = "BenchAlert"
SPARROW_INBOUND_TOKEN = "bench-inbound-0123456789abcdef"
SHORT_CODE = "34001"
# Android: the phones' local-server user and password.
ANDROID_USER = "sms"
ANDROID_PASSWORD = "bench-phone-password"


@dataclass(frozen=True)
class Request:
    """One prepared webhook delivery."""

    method: str
    url: str  # with its query already encoded
    body: bytes | None
    headers: dict[str, str]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


async def _deliver(plan: list[Planned], requests: list[Request], timeout: float) -> list[Outcome]:
    """Sends `requests[i]` at `plan[i].at` seconds after the start, open loop."""
    outcomes: list[Outcome | None] = [None] * len(plan)
    connector = aiohttp.TCPConnector(limit=512)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(i: int) -> None:
            request = requests[i]
            sent_at = time.time()
            start = time.perf_counter()
            try:
                async with session.request(
                    request.method,
                    yarl.URL(request.url, encoded=True),
                    data=request.body,
                    headers=request.headers,
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            outcomes[i] = Outcome(plan[i], status, time.perf_counter() - start, 1, sent_at)

        tasks = []
        t0 = time.perf_counter()
        for i in sorted(range(len(plan)), key=lambda i: plan[i].at):
            delay = t0 + plan[i].at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return [outcome for outcome in outcomes if outcome is not None]


class BenchChannel:
    """A channel's fake, settings, inbound delivery and replies (see the module's docstring)."""

    name = ""
    path = ""  # the inbound webhook's path on the service
    fake: FakeProcess

    def env(self, public_url: str) -> dict[str, str]:
        """What `bot run` is configured with for this channel."""
        raise NotImplementedError

    def prepare(self, url: str, plan: list[Planned]) -> list[Request]:
        """The requests the provider would send for `plan`, ready to go."""
        raise NotImplementedError

    def deliver(self, url: str, plan: list[Planned], timeout: float = 15.0) -> list[Outcome]:
        """Delivers `plan` to the webhook at `url` open loop; the outcomes in plan order."""
        requests = self.prepare(url, plan)
        return asyncio.run(_deliver(plan, requests, timeout))

    def received(self) -> list[dict[str, Any]]:
        """Replies the provider took: `to` (E.164), `at` (epoch s), `body`."""
        sent: list[dict[str, Any]] = _get_json(f"{self.fake.url}/_received")["sent"]
        return sent

    def describe(self) -> str:
        """One line on how the channel is set up."""
        return self.name

    @property
    def pids(self) -> list[int]:
        return [self.fake.pid]

    def stop(self) -> None:
        self.fake.stop()


class Twilio(BenchChannel):
    """Twilio: the webhooks and fake API bench/webhook_load.py uses."""

    name = "twilio"
    path = "/webhooks/twilio/messages"

    def __init__(self, api_delay: float) -> None:
        self.fake = FakeProcess("testkit.fake_twilio", "--delay", str(api_delay))

    def env(self, public_url: str) -> dict[str, str]:
        return {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_SMS_FROM": ACCOUNT.to,
            "TWILIO_API_BASE": self.fake.url,
        }

    def deliver(self, url: str, plan: list[Planned], timeout: float = 15.0) -> list[Outcome]:
        return send(url, plan, ACCOUNT, timeout=timeout)


class Sparrow(BenchChannel):
    """Sparrow SMS: its keyword GETs in, its send API out (no Twilio configured)."""

    name = "sparrow"
    path = f"/webhooks/sparrow/{SPARROW_INBOUND_TOKEN}/inbound"

    def __init__(self, api_delay: float) -> None:
        # Credits enough for any run: running out is a test's subject, not the bench's.
        self.fake = FakeProcess(
            "testkit.fake_sparrow", "--token", SPARROW_TOKEN, "--credits", "1e12",
            "--delay", str(api_delay),
        )  # fmt: skip

    def env(self, public_url: str) -> dict[str, str]:
        return {
            "SPARROW_TOKEN": SPARROW_TOKEN,
            "SPARROW_FROM": SPARROW_FROM,
            "SPARROW_API_BASE": self.fake.url,
            "SPARROW_INBOUND_TOKEN": SPARROW_INBOUND_TOKEN,
        }

    def prepare(self, url: str, plan: list[Planned]) -> list[Request]:
        requests = []
        for planned in plan:
            text = planned.body
            # As Sparrow calls us (docs/incoming.md): the subscriber's national number, the
            # short code, the whole SMS, and the keyword it starts with.
            query = {
                "from": planned.sender.removeprefix("+977"),
                "to": SHORT_CODE,
                "text": text,
                "keyword": text.split()[0] if text.split() else "",
            }
            requests.append(Request("GET", f"{url}?{urlencode(query)}", None, {}))
        return requests

    def received(self) -> list[dict[str, Any]]:
        # Sparrow is given 10-digit national numbers: back to E.164 to match the senders.
        return [r | {"to": f"+977{r['to']}"} for r in super().received()]


class Android(BenchChannel):
    """The Android gateway: `phones` fake phones in one process, each with its own key."""

    name = "android"
    path = "/webhooks/android/events"

    def __init__(self, api_delay: float, pace: float, phones: int = 3) -> None:
        self.pace = pace
        keys = [f"bench-phone-{i}-signing-key" for i in range(1, phones + 1)]
        self.fake = FakeProcess(
            "testkit.fake_android", "--phones", str(phones), "--signing-keys", ",".join(keys),
            "--password", ANDROID_PASSWORD, "--delay", str(api_delay),
        )  # fmt: skip
        self.urls = self.fake.url.split()
        self.keys = keys
        # The harness signs each phone's webhooks as that phone (its device id, its key); the
        # signers' own servers are closed at once: they only sign.
        self.signers = []
        for phone_url, key in zip(self.urls, keys, strict=True):
            signer = FakeAndroidPhone(
                ANDROID_USER,
                ANDROID_PASSWORD,
                key,
                _get_json(f"{phone_url}/_received")["device_id"],
            )
            signer.server.server_close()
            self.signers.append(signer)

    def env(self, public_url: str) -> dict[str, str]:
        phones = ";".join(
            f"p{i}={phone_url},{ANDROID_USER},{ANDROID_PASSWORD},{key}"
            for i, (phone_url, key) in enumerate(zip(self.urls, self.keys, strict=True), 1)
        )
        return {"ANDROID_GATEWAY_PHONES": phones, "ANDROID_GATEWAY_PACE": f"{self.pace:g}"}

    def prepare(self, url: str, plan: list[Planned]) -> list[Request]:
        # Signed for the time each goes out (the service accepts ±5 minutes).
        t0 = time.time()
        requests = []
        for i, planned in enumerate(plan):
            signer = self.signers[i % len(self.signers)]  # people text the phones in turn
            webhook = signer.received(planned.body, planned.sender, at=t0 + planned.at)
            requests.append(Request("POST", url, webhook.body, webhook.headers))
        return requests

    def received(self) -> list[dict[str, Any]]:
        replies: list[dict[str, Any]] = []
        for phone_url in self.urls:
            replies += _get_json(f"{phone_url}/_received")["sent"]
        return replies

    def describe(self) -> str:
        return (
            f"android: {len(self.urls)} phones in one fake process, "
            f"ANDROID_GATEWAY_PACE={self.pace:g} segments/min per phone (paces replies too)"
        )


def make(name: str, api_delay: float, android_pace: float, android_phones: int) -> BenchChannel:
    """The channel called `name`, its fake started."""
    if name == "twilio":
        return Twilio(api_delay)
    if name == "sparrow":
        return Sparrow(api_delay)
    if name == "android":
        return Android(api_delay, android_pace, android_phones)
    raise ValueError(f"unknown channel {name!r} (one of {', '.join(NAMES)})")
