"""The fault tests' TCP proxy behaves like the network it stands for.

The database-cut fault test once hung a worker for minutes: the proxy ended an idle link's
pipe after 5 s (a socket timeout left on it) and closed its sockets without shutting them
down, so the service's side never saw the link end and waited on it forever. A real
restart resets the link; a test proxy must too.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def echo_server() -> Iterator[socket.socket]:
    """A server that echoes each connection's bytes and closes when its peer does."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server
    server.close()


def test_an_idle_link_stays_up_and_a_cut_link_is_reset(echo_server: socket.socket) -> None:
    proxy = TcpProxy(echo_server.getsockname()[1])
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        client.sendall(b"ping")
        assert client.recv(16) == b"ping"
        threading.Event().wait(5.5)  # longer than the proxy's connect timeout
        client.sendall(b"still there")
        assert client.recv(16) == b"still there"
        proxy.cut(1.0)
        # The service's side sees the end of the link at once, as after a server restart.
        with contextlib.suppress(ConnectionResetError):  # a reset says so too
            assert client.recv(16) == b""
        client.close()
    finally:
        proxy.close()


def test_a_link_ended_by_the_server_ends_for_the_client(echo_server: socket.socket) -> None:
    """One direction ending (the server closed) ends the other: no half-open black hole."""
    proxy = TcpProxy(echo_server.getsockname()[1])
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        client.sendall(b"x")
        assert client.recv(4) == b"x"
        client.shutdown(socket.SHUT_WR)  # the echo server sees EOF and closes its side
        assert client.recv(4) == b""  # ... and so the client's side ends too
        client.close()
    finally:
        proxy.close()
