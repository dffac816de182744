"""A stand-in for Rasa's HTTP API on 127.0.0.1: `/model/parse` answers from a table.

Like `rasa run --enable-api --auth-token T`, a fake with `token` set answers 401 to any API
call without `?token=T` (the status page `/` stays open, as Rasa's does).
"""

from __future__ import annotations

import contextlib
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from testkit.servers import LoopbackServer, serve


class FakeRasa(LoopbackServer):
    """Answers `POST /model/parse` with the ranking set for a text (or out_of_scope)."""

    def __init__(self, port: int = 0) -> None:
        self.answers: dict[str, list[tuple[str, float]]] = {}
        self.delay = 0.0
        self.status = 200
        self.calls: list[str] = []
        self.token: str | None = None
        self.loaded: list[str] = []  # model files `PUT /model` was asked to load
        self.refused = 0  # API calls answered 401 for a missing or wrong token
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, payload: object) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # The client may have given up waiting, as the timeout tests intend.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def _authorized(self) -> bool:
                """Rasa's `--auth-token` check: the `token` query parameter must match."""
                if fake.token is None:
                    return True
                if parse_qs(urlsplit(self.path).query).get("token") == [fake.token]:
                    return True
                fake.refused += 1
                self._reply(401, {"status": "failure", "reason": "NotAuthenticated"})
                return False

            def do_GET(self) -> None:
                self._reply(200 if fake.status < 500 else fake.status, {"version": "3.6.21"})

            def _payload(self) -> Any:
                """The JSON body, or None (answered 400) when it is not whole: a client
                killed mid-request sends less than its Content-Length."""
                try:
                    return json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except ValueError:
                    self._reply(400, {"status": "failure"})
                    return None

            def do_PUT(self) -> None:
                payload = self._payload()
                if payload is None:
                    return
                if urlsplit(self.path).path != "/model":
                    self._reply(404, {"status": "failure"})
                elif self._authorized():
                    fake.loaded.append(payload["model_file"])
                    self.send_response(204)  # Rasa's answer: loaded, no body
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def do_POST(self) -> None:
                payload = self._payload()
                if payload is None:
                    return
                if self.path == "/_status":  # for tests running the fake in a process
                    fake.status = int(payload["status"])
                    self._reply(200, {"status": fake.status})
                    return
                if not self._authorized():
                    return
                text = payload["text"]
                fake.calls.append(text)
                if fake.delay:
                    time.sleep(fake.delay)
                if fake.status != 200:
                    self._reply(fake.status, {"error": "scripted"})
                    return
                ranking = fake.answers.get(text, [("out_of_scope", 0.9)])
                self._reply(
                    200,
                    {
                        "text": text,
                        "intent": {"name": ranking[0][0], "confidence": ranking[0][1]},
                        "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
                        "entities": [],
                    },
                )

        self.listen(Handler, port)


if __name__ == "__main__":  # `python -m testkit.fake_rasa --answer "text=intent:0.9"`
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answer", action="append", default=[], help="TEXT=INTENT:CONFIDENCE")
    args = parser.parse_args()
    server = FakeRasa()
    for item in args.answer:
        text, _, scored = item.rpartition("=")
        intent, _, confidence = scored.partition(":")
        server.answers[text] = [(intent, float(confidence or 0.9))]
    serve(server.start())
