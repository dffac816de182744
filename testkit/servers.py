"""Fakes in processes of their own, and free loopback ports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, Self

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (a process killed or stopped, a timeout) is not
    worth a traceback in the output of what the test runs."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """An HTTP server on a free 127.0.0.1 port, served from a daemon thread once started."""

    def listen(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
        self.server = _QuietServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        return self.server

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ScriptedFailures:
    """A fake provider told to fail its next calls: `fail_next(503)`, `fail_next(400, code)`."""

    def __init__(self) -> None:
        self._failures: deque[tuple[int, int | None]] = deque()
        self._lock = threading.Lock()

    def fail_next(self, status: int, code: int | None = None, times: int = 1) -> None:
        """The next `times` calls answer HTTP `status` with the provider's error `code`."""
        with self._lock:
            self._failures.extend([(status, code)] * times)

    def _next_failure(self) -> tuple[int, int | None] | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None


class Server(Protocol):
    url: str

    def stop(self) -> None: ...


def serve(server: Server) -> None:
    """`python -m testkit.<fake>`: prints the fake's URL, then serves until interrupted."""
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


class FakeProcess:
    """A fake (Twilio's API, Rasa) in its own process, so a load generator's process does not
    slow it down; `url` is where it listens."""

    def __init__(self, module: str, *args: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().decode().strip()
        self.pid = self.process.pid

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=60) as response:  # noqa: S310
            return json.load(response)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.load(response)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()
