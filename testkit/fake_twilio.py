"""A small Twilio-compatible Messages API on 127.0.0.1 that records what it receives.

Used with the real `twilio` client (TWILIO_API_BASE points here). It answers like Twilio:
201 with a JSON message resource, or an error body with `code` and `message`. Failures can
be scripted per call, and every answer can be delayed (the real API takes ~200 ms).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from testkit.servers import LoopbackServer, ScriptedFailures, serve


@dataclass
class Received:
    """One Messages API call as the server saw it."""

    account_sid: str
    form: dict[str, str]
    auth: str | None
    status: int
    sid: str | None = None
    at: float = field(default_factory=time.time)


class FakeTwilio(ScriptedFailures, LoopbackServer):
    """A threaded HTTP server speaking enough of Twilio's REST API for sending messages."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[Received] = []
        self.list_calls = 0
        # Accepted messages by recipient: the list API looks one recipient up, as Twilio's
        # indexed API does (a scan per lookup made recoveries after a crash crawl under load).
        self._sent_to: dict[str, list[Received]] = {}
        super().__init__()
        self._cond = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, as from Twilio

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                if self.path == "/_received":  # for benchmarks running the fake in a process
                    sent = [
                        {"to": c.form.get("To"), "at": c.at, "body": c.form.get("Body")}
                        for c in fake.sent
                    ]
                    self._reply(200, {"sent": sent, "calls": len(fake.calls)})
                    return
                if self.path.split("?")[0].endswith("/Messages.json"):  # the list API
                    self._reply(200, fake._list(self.path))
                    return
                if self.path == "/_count":
                    self._reply(200, {"sent": len(fake.sent), "calls": len(fake.calls)})
                    return
                self._reply(404, {"code": 20404, "message": "not found", "status": 404})

            def _reply(self, status: int, payload: dict[str, object]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._handler = Handler
        self.listen(Handler)

    @property
    def sent(self) -> list[Received]:
        """The calls that were accepted (201)."""
        with self._lock:
            return self.sent_now()

    def sent_now(self) -> list[Received]:
        """`sent`, for a caller that holds the lock."""
        return [c for c in self.calls if c.status == 201]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Blocks until `count` messages were accepted; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for c in self.calls if c.status == 201) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return [c for c in self.calls if c.status == 201]

    def _list(self, path: str) -> dict[str, object]:
        """GET …/Messages.json?To=…: accepted messages, newest first, as Twilio lists them."""
        query = {k: v[0] for k, v in parse_qs(path.partition("?")[2]).items()}
        self.list_calls += 1
        with self._lock:
            wanted = list(self._sent_to.get(query["To"], ())) if "To" in query else self.sent_now()
        messages = [
            {
                "sid": c.sid,
                "to": c.form.get("To"),
                "from": c.form.get("From"),
                "body": c.form.get("Body"),
                "status": "queued",
                "direction": "outbound-api",
                "date_created": formatdate(c.at, usegmt=True),
                "date_sent": None,
            }
            for c in reversed(wanted)
        ][: int(query.get("PageSize", "50"))]
        return {
            "messages": messages,
            "page": 0,
            "page_size": len(messages),
            "next_page_uri": None,
            "previous_page_uri": None,
            "uri": path,
        }

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode()
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        parts = request.path.split("/")
        # /2010-04-01/Accounts/{AccountSid}/Messages.json
        if len(parts) != 5 or parts[1] != "2010-04-01" or parts[4] != "Messages.json":
            request._reply(404, {"code": 20404, "message": "not found", "status": 404})  # type: ignore[attr-defined]
            return
        if self.delay:
            time.sleep(self.delay)
        failure = self._next_failure()
        if failure is not None:
            status, code = failure
            call = Received(parts[3], form, request.headers.get("Authorization"), status)
            payload: dict[str, object] = {
                "code": code,
                "message": f"scripted {status}",
                "status": status,
            }
        else:
            sid = "SM" + uuid.uuid4().hex
            call = Received(parts[3], form, request.headers.get("Authorization"), 201, sid)
            payload = {
                "sid": sid,
                "account_sid": parts[3],
                "to": form.get("To"),
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{parts[3]}/Messages/{sid}.json",
            }
        with self._cond:
            self.calls.append(call)
            if call.status == 201:
                self._sent_to.setdefault(str(form.get("To")), []).append(call)
            self._cond.notify_all()
        request._reply(call.status, payload)  # type: ignore[attr-defined]


if __name__ == "__main__":  # `python -m testkit.fake_twilio --delay 0.2` prints its URL
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    serve(FakeTwilio(args.delay).start())
