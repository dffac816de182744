"""A TCP proxy in front of PostgreSQL whose link the test can cut: a database restart as the
service sees it (connections dropped, new ones refused) without touching the real server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut(seconds)` drops and refuses connections."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, seconds: float) -> None:
        """Closes every open connection and refuses new ones for `seconds`."""
        with self._lock:
            self._down_until = time.monotonic() + seconds
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._running = False
        self.listener.close()
        self.cut(0)

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            # Blocking from here on: a timeout left on the socket ended an idle link's pipe
            # after 5 s and left the other direction open (a black hole, not a restart).
            upstream.settimeout(None)
            with self._lock:
                if time.monotonic() < self._down_until:  # cut while we connected
                    client.close()
                    upstream.close()
                    continue
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # Shut down before closing: close() alone does not wake the other direction's
            # thread blocked in recv(), and the socket it holds sends no FIN, so the service
            # would wait forever on a link that a real restart would have reset.
            with self._lock:
                self._sockets -= {source, sink}
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
