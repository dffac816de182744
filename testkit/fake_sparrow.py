"""A small Sparrow SMS-compatible API on 127.0.0.1 that records what it receives.

Built from Sparrow's documentation (bot/channels/sparrow/api.py): `GET`/`POST /v2/sms/`
with `token`, `from`, `to` (comma-separated 10-digit numbers), `text` answers 200
`{"count", "response_code": 200, "response"}`; errors are 403 `{"response_code", "response"}`
(1002 for a wrong token, 1000 for a missing field, 1007 for a number that is not 10 digits);
`GET /v2/credit/?token=` answers `credits_available`/`credits_consumed`. Each accepted
message costs one credit. Failures can be scripted per call (`fail_next`), and every send
answered after `delay` seconds (the real API is across the internet). `GET /_received` lists
the accepted messages with the time each was taken (for benchmarks running the fake in a
process of its own).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from testkit.servers import LoopbackServer, ScriptedFailures, serve

ERROR_TEXTS = {
    1000: "A required field is missing",
    1002: "Invalid Token",
    1007: "Invalid Receiver",
    1012: "No Credits Available",
    1013: "Insufficient Credits",
}


@dataclass
class Received:
    """One send call as the server saw it."""

    form: dict[str, str]
    status: int
    method: str
    at: float = field(default_factory=time.time)


class FakeSparrow(ScriptedFailures, LoopbackServer):
    """A threaded HTTP server speaking enough of Sparrow's v2 API to send SMS."""

    def __init__(self, token: str, credits: float = 1000.0, delay: float = 0.0) -> None:
        self.token = token
        self.delay = delay
        self.credits = credits
        self.consumed = 0.0
        self.calls: list[Received] = []
        super().__init__()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                fake._handle(self, urlsplit(self.path).query)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake._handle(self, self.rfile.read(length).decode())

        self.listen(Handler)

    @property
    def sent(self) -> list[Received]:
        """The send calls that were accepted."""
        with self._lock:
            return [c for c in self.calls if c.status == 200]

    def _handle(self, request: BaseHTTPRequestHandler, query: str) -> None:
        form = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        path = urlsplit(request.path).path
        if path == "/_received":  # for benchmarks: one entry per accepted recipient
            sent = [
                {"to": number, "at": c.at, "body": c.form.get("text")}
                for c in self.sent
                for number in c.form["to"].split(",")
            ]
            _reply(request, 200, {"sent": sent, "calls": len(self.calls)})
            return
        if path == "/v2/credit/":
            if form.get("token") != self.token:
                _reply(request, 403, _error(1002))
                return
            with self._lock:
                payload: dict[str, object] = {
                    "credits_available": self.credits,
                    "credits_consumed": self.consumed,
                    "response_code": 200,
                }
            _reply(request, 200, payload)
            return
        if path != "/v2/sms/":
            _reply(request, 404, {"response": "not found"})
            return
        if self.delay:
            time.sleep(self.delay)
        failure = self._next_failure()
        status, answer = self._answer(form) if failure is None else (failure[0], _error(failure[1]))
        with self._lock:
            self.calls.append(Received(form, status, request.command))
        _reply(request, status, answer)

    def _answer(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        if not all(form.get(name) for name in ("token", "from", "to")):
            return 403, _error(1000)
        if not form.get("text"):
            return 403, {"response_code": 1010, "response": "Text cannot be empty"}
        if form["token"] != self.token:
            return 403, _error(1002)
        numbers = form["to"].split(",")
        if not all(len(n) == 10 and n.isdigit() for n in numbers):
            return 403, _error(1007)
        with self._lock:
            if self.credits < len(numbers):
                return 403, _error(1013)
            self.credits -= len(numbers)
            self.consumed += len(numbers)
        count = len(numbers)
        return 200, {
            "count": count,
            "response_code": 200,
            "response": f"{count} mesages has been queued for delivery",
        }


def _error(code: int | None) -> dict[str, object]:
    return {"response_code": code, "response": ERROR_TEXTS.get(code or 0, "scripted failure")}


def _reply(request: BaseHTTPRequestHandler, status: int, payload: dict[str, object]) -> None:
    body = json.dumps(payload).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


if __name__ == "__main__":  # `python -m testkit.fake_sparrow [--delay 0.2]` prints its URL
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--token", default=os.environ.get("SPARROW_TOKEN", "sparrow-test-token"))
    parser.add_argument("--credits", type=float, default=1000.0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    serve(FakeSparrow(token=args.token, credits=args.credits, delay=args.delay).start())
