"""Local TCP endpoints that make a provider call fail at a chosen step, for the adapters'
`maybe_sent` (bot/channels/transport.py): before any byte of the request is sent (nothing
listens: refused; a listener whose queue is full: connect timeout), or after the whole
request was written (no answer: read timeout; the connection closed without an answer; an
answer that is not the provider's, such as a proxy's bare 502)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable

import pytest

from bot.channels.base import ChannelAdapter, SendError
from bot.core.messages import Outbound
from testkit.servers import free_port

# (method, path) -> (HTTP status, body); the answer of `Endpoint("answer", ...)`.
Answer = Callable[[str, str], tuple[int, bytes]]


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"


class Endpoint:
    """A listener on 127.0.0.1 that reads each whole request, then, by `mode`:
    "silent" never answers (the caller's read times out), "hang_up" closes the connection
    without a word, "answer" replies what `answer(method, path)` says. `requests` counts the
    requests it read in full."""

    def __init__(self, mode: str, answer: Answer | None = None) -> None:
        assert mode in ("silent", "hang_up", "answer")
        assert (mode == "answer") == (answer is not None)
        self.mode = mode
        self.answer = answer
        self.requests: list[tuple[str, str]] = []
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            doomed, self._open = self._open, []
        for conn in doomed:
            with contextlib.suppress(OSError):
                conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            method, path = _read_request(conn)
            with self._lock:
                self.requests.append((method, path))
            if self.mode == "hang_up":
                conn.close()
            elif self.mode == "answer":
                assert self.answer is not None
                status, body = self.answer(method, path)
                head = (
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                )
                conn.sendall(head.encode() + body)
                conn.close()
            # "silent": the connection stays open, unanswered, until close()


def _read_request(conn: socket.socket) -> tuple[str, str]:
    """Reads one request (head and a Content-Length body); returns its method and path."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("closed before the request ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        (int(v) for k, _, v in (line.partition(":") for line in lines[1:])
         if k.strip().lower() == "content-length"),
        0,
    )  # fmt: skip
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("closed before the body ended")
        body += chunk
    method, path = lines[0].split(" ")[:2]
    return method, path


class Backlogged:
    """A listener that never accepts, its queue already full: a new connection is never
    opened (the SYN goes unanswered), so the caller's connect times out."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._fillers: list[socket.socket] = []
        for _ in range(3):  # Linux queues backlog + 1 connections; the rest wait for SYN-ACK
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            self._fillers.append(filler)

    def close(self) -> None:
        for sock in (*self._fillers, self.listener):
            sock.close()


def send_failure(adapter: ChannelAdapter, message: Outbound, use_async: bool) -> SendError:
    """The SendError `adapter` raises for `message`, by `send` or, on a loop of its own,
    `send_async` (closed after); a call that hangs fails the test here instead of hanging."""
    with pytest.raises(SendError) as raised:
        if use_async:

            async def send_and_close() -> None:
                try:
                    await asyncio.wait_for(adapter.send_async(message), 15)
                finally:
                    await adapter.aclose()

            asyncio.run(send_and_close())
        else:
            adapter.send(message)
    return raised.value
