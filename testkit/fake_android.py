"""A local fake of the Android SMS gateway app's local-server API, on 127.0.0.1.

As the cloud server (`api.sms-gate.app/3rdparty/v1`, ANDROID_GATEWAY_MODE=cloud) it also
answers `GET /devices` and takes a `deviceId` among `devices`. Built from the app's
documentation and source (bot/channels/android/api.py lists them):
basic auth on everything but `GET /health`; `POST /message` (or `/messages`) with
`{"id"?, "textMessage": {"text"}, "phoneNumbers": [...], ...}` answers 202 with the message
(`id`, `deviceId`, `state` "Pending", `recipients`, `states`), 400 `{"message"}` for an
empty text, no numbers or a number that is not E.164 (the app itself checks a number only
when it sends it; the cloud server checks it here), 409 for an id it already has, 401 for
wrong credentials; `GET /message/{id}` answers the message or 404; `POST /webhooks`
registers `{"url", "event"}` (201). Every answer closes its connection.

What a test can do with it: `die()` (the port refuses connections) and `recover()` (the
same port answers again, messages kept), `die_after(k)` (after its k-th accepted message;
`answer=False` takes that message and drops the connection without answering, as a phone
dying mid-call), `fail_next(status)`, `progress(state)` (moves its messages on and queues
the signed `sms:sent`/`sms:delivered`/`sms:failed` webhooks the app would post),
`received(text, sender)` (the signed `sms:received` webhook of an SMS to this phone) and
`post_events()` (posts queued webhooks to the registered URLs, as the app does).

For benchmarks, a phone answers each send after `delay` seconds, and `GET /_received` (no
credentials) lists what it took with the time it took each; `python -m testkit.fake_android
--phones 3` serves several phones from one process (their URLs on one line).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from bot.channels.android.api import sign
from testkit.servers import LoopbackServer, ScriptedFailures, serve

E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
STATE_EVENTS = {"Sent": "sms:sent", "Delivered": "sms:delivered", "Failed": "sms:failed"}


@dataclass
class FakeMessage:
    """One message the phone took."""

    id: str
    to: str
    text: str
    state: str = "Pending"
    states: dict[str, str] = field(default_factory=dict)
    device: str = ""  # the device it went to (the cloud server has several)
    at: float = field(default_factory=time.time)  # when the phone took it (epoch seconds)


@dataclass(frozen=True)
class Webhook:
    """A signed webhook request as the app sends it: raw body and headers."""

    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class FakeAndroidPhone(ScriptedFailures, LoopbackServer):
    """One phone running the gateway app in local-server mode."""

    def __init__(
        self,
        username: str = "sms",
        password: str = "phone-password",  # noqa: S107 - a fake
        signing_key: str = "signing-key-0001",
        device_id: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self.delay = delay  # seconds before answering a send (benchmarks)
        self.username = username
        self.password = password
        self.signing_key = signing_key
        self.device_id = device_id or uuid.uuid4().hex
        # As the cloud server (ANDROID_GATEWAY_MODE=cloud), the account's devices.
        self.devices = {self.device_id}
        self.messages: dict[str, FakeMessage] = {}
        self.accepted: list[FakeMessage] = []  # in the order it took them
        self.webhooks: list[dict[str, str]] = []
        self.events: list[Webhook] = []  # signed webhooks waiting to be posted
        self.calls: list[tuple[str, str, int]] = []  # (method, path, status)
        self._die_after: tuple[int, bool] | None = None
        self.alive = False
        super().__init__()
        self._handler = self._make_handler()
        self.listen(self._handler)
        self._port = int(self.server.server_address[1])

    # -- life and death -------------------------------------------------------------------

    def start(self) -> FakeAndroidPhone:
        super().start()
        self.alive = True
        return self

    def die(self) -> None:
        """The phone stops answering: its port refuses connections."""
        if self.alive:
            self.alive = False
            self.server.shutdown()
            self.server.server_close()

    def recover(self) -> None:
        """The phone answers again on the same address, with the messages it had."""
        if not self.alive:
            self.listen(self._handler, port=self._port)
            self.start()

    def die_after(self, count: int, answer: bool = True) -> None:
        """Dies once it has taken `count` more messages; `answer=False`: it takes the last
        one and drops the connection without answering."""
        self._die_after = (len(self.accepted) + count, answer)

    def stop(self) -> None:
        self.die()

    # -- what the app would post ----------------------------------------------------------

    def signed(self, event: str, payload: dict[str, Any], at: float | None = None) -> Webhook:
        """A webhook request for `event`, signed as the app signs it (at time `at`)."""
        body = json.dumps(
            {
                "deviceId": self.device_id,
                "event": event,
                "id": uuid.uuid4().hex[:21],
                "payload": payload,
                "webhookId": "wh-" + event,
            }
        ).encode()
        stamp = str(int(time.time() if at is None else at))
        signature = sign(self.signing_key, body, stamp)
        return Webhook(
            body,
            {"Content-Type": "application/json", "X-Signature": signature, "X-Timestamp": stamp},
        )

    def received(self, text: str, sender: str, at: float | None = None) -> Webhook:
        """The `sms:received` webhook of an SMS `sender` sent to this phone."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        payload = {
            "messageId": uuid.uuid4().hex[:16],
            "message": text,
            "phoneNumber": sender,
            "sender": sender,
            "recipient": None,
            "simNumber": 1,
            "receivedAt": now,
        }
        return self.signed("sms:received", payload, at)

    def progress(
        self, state: str = "Delivered", reason: str = "RESULT_ERROR_GENERIC_FAILURE"
    ) -> list[Webhook]:
        """Moves every message not yet there to `state` ("Sent", "Delivered", "Failed") and
        queues the webhooks the app would send; returns them."""
        new: list[Webhook] = []
        with self._lock:
            for message in self.accepted:
                if message.state in (state, "Failed", "Delivered"):
                    continue
                steps = ["Sent", state] if state == "Delivered" else [state]
                for step in steps:
                    if message.state == step:
                        continue
                    message.state = step
                    message.states[step] = datetime.now(UTC).isoformat()
                    new.append(self.signed(STATE_EVENTS[step], _status_payload(message, reason)))
            self.events.extend(new)
        return new

    def post_events(self) -> int:
        """Posts the queued webhooks to the URLs registered for their event; returns how many."""
        with self._lock:
            events, self.events = self.events, []
            hooks = list(self.webhooks)
        posted = 0
        for webhook in events:
            for hook in hooks:
                if hook["event"] == webhook.json["event"]:
                    request = urllib.request.Request(  # noqa: S310 - loopback in tests
                        hook["url"], data=webhook.body, headers=webhook.headers, method="POST"
                    )
                    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
                        posted += 1
        return posted

    # -- the API --------------------------------------------------------------------------

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_DELETE(self) -> None:
                fake._handle(self)

        return Handler

    def _authorized(self, request: BaseHTTPRequestHandler) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("Authorization", "") == f"Basic {expected}"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        path = request.path.split("?", 1)[0].rstrip("/")
        method = request.command
        if method == "GET" and path == "/health":
            self._reply(request, 200, {"status": "pass"}, method, path)
            return
        if method == "GET" and path == "/_received":  # for benchmarks, not the app's API
            with self._lock:
                sent = [{"to": m.to, "at": m.at, "body": m.text} for m in self.accepted]
            self._reply(request, 200, {"sent": sent, "device_id": self.device_id}, method, path)
            return
        if not self._authorized(request):
            self._reply(request, 401, {"message": "Unauthorized"}, method, path)
            return
        if method == "POST" and path in ("/message", "/messages"):
            failure = self._next_failure()
            if failure is not None:
                self._reply(request, failure[0], {"message": "scripted failure"}, method, path)
                return
            self._send(request, raw, method, path)
            return
        match = re.fullmatch(r"/messages?/([^/]+)", path)
        if method == "GET" and match:
            with self._lock:
                found = self.messages.get(match.group(1))
            if found is None:
                self._reply(request, 404, {"message": "Not Found"}, method, path)
            else:
                self._reply(request, 200, self._shape(found), method, path)
            return
        if method == "POST" and path in ("/webhook", "/webhooks"):
            hook = json.loads(raw)
            entry = {"id": hook.get("id") or uuid.uuid4().hex[:21], **hook}
            with self._lock:
                self.webhooks = [w for w in self.webhooks if w["id"] != entry["id"]] + [entry]
            self._reply(request, 201, entry, method, path)
            return
        if method == "GET" and path in ("/device", "/devices"):
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            devices = [{"id": d, "name": f"fake/{d}", "lastSeen": now} for d in self.devices]
            self._reply(request, 200, devices, method, path)
            return
        if method == "GET" and path in ("/webhook", "/webhooks"):
            self._reply(request, 200, list(self.webhooks), method, path)
            return
        self._reply(request, 404, {"message": "Not Found"}, method, path)

    def _send(self, request: BaseHTTPRequestHandler, raw: bytes, method: str, path: str) -> None:
        if self.delay:
            time.sleep(self.delay)
        try:
            body = json.loads(raw)
        except ValueError:
            self._reply(request, 400, {"message": "Bad Request"}, method, path)
            return
        text = (body.get("textMessage") or {}).get("text") or body.get("message")
        numbers = body.get("phoneNumbers") or []
        if not text:
            self._reply(request, 400, {"message": "Text message is empty"}, method, path)
            return
        if not numbers:
            self._reply(request, 400, {"message": "Empty phone numbers list"}, method, path)
            return
        if not all(isinstance(n, str) and E164.match(n) for n in numbers):
            self._reply(request, 400, {"message": "Invalid phone number"}, method, path)
            return
        device = body.get("deviceId")
        if device is not None and device not in self.devices:
            self._reply(request, 400, {"message": "Invalid device ID"}, method, path)
            return
        message_id = body.get("id") or uuid.uuid4().hex[:21]
        with self._lock:
            if message_id in self.messages:
                conflict = {"message": "Message with the same ID already exists"}
                self._reply(request, 409, conflict, method, path)
                return
            message = FakeMessage(message_id, numbers[0], text, device=device or self.device_id)
            message.states["Pending"] = datetime.now(UTC).isoformat()
            self.messages[message_id] = message
            self.accepted.append(message)
            dying = self._die_after is not None and len(self.accepted) >= self._die_after[0]
            answer = not dying or (self._die_after is not None and self._die_after[1])
            if dying:
                self._die_after = None
        if dying:  # before answering: nothing reaches it once the answer is out
            self.die()
        if answer:
            self._reply(request, 202, self._shape(message), method, path)
        else:
            self.calls.append((method, path, 0))
            request.close_connection = True  # taken, but no answer

    def _shape(self, message: FakeMessage) -> dict[str, Any]:
        return {
            "id": message.id,
            "deviceId": self.device_id,
            "state": message.state,
            "isHashed": False,
            "isEncrypted": False,
            "recipients": [{"phoneNumber": message.to, "state": message.state, "error": None}],
            "states": dict(message.states),
        }

    def _reply(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        method: str,
        path: str,
    ) -> None:
        self.calls.append((method, path, status))
        body = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(body)
        request.close_connection = True

    @property
    def sent_texts(self) -> list[tuple[str, str]]:
        """(recipient, text) of every message it took, in order."""
        with self._lock:
            return [(m.to, m.text) for m in self.accepted]


def _status_payload(message: FakeMessage, reason: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    payload: dict[str, Any] = {
        "messageId": message.id,
        "phoneNumber": message.to,
        "recipient": message.to,
        "sender": None,
        "simNumber": 1,
    }
    if message.state == "Sent":
        payload |= {"partsCount": 1, "sentAt": now}
    elif message.state == "Delivered":
        payload["deliveredAt"] = now
    else:
        payload |= {"failedAt": now, "reason": reason}
    return payload


class FakePhones:
    """Several phones served from one process; `url` is their URLs separated by spaces."""

    def __init__(self, phones: list[FakeAndroidPhone]) -> None:
        self.phones = phones
        self.url = " ".join(phone.url for phone in phones)

    def stop(self) -> None:
        for phone in self.phones:
            phone.stop()


if __name__ == "__main__":  # `python -m testkit.fake_android` prints its URL(s)
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=1, help="phones served by this process")
    parser.add_argument(
        "--signing-keys",
        default=os.environ.get("ANDROID_SIGNING_KEY", "signing-key-0001"),
        help="each phone's webhook signing key, separated by commas (one: shared by all)",
    )
    parser.add_argument("--password", default="phone-password")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    keys = args.signing_keys.split(",")
    if len(keys) not in (1, args.phones):
        parser.error("--signing-keys: one key, or one per phone")
    serve(
        FakePhones(
            [
                FakeAndroidPhone(
                    password=args.password, signing_key=keys[i % len(keys)], delay=args.delay
                ).start()
                for i in range(args.phones)
            ]
        )
    )
