"""The web's mover rings the workers' feeds when it has stored messages (the embedded default).

A worker's feed (bot/feed.py) finds waiting messages by reading the messages table. Looking
every 5 ms while anything commits cost a worker 164-215 wake-ups a second at 100 msg/s (on
this kind of virtual machine each wake-up of a thread costs tens of microseconds of CPU),
though new messages come only with the mover's batches, 25 a second at most (bot/spool.py).

So each feed binds a Unix datagram socket in `var/doorbells/` and sleeps on it; the mover,
after each batch it stores, sends one byte to every socket there. A ring is only a hint: a
feed still reads the table to know what is waiting, looks again on its own every IDLE_POLL
(messages stored by other paths: a worker's retry, the simulator) and, until the first ring
arrives, as often as it did before (a worker started without a web beside it). A lost ring
(a full socket buffer: the feed is behind and reads the table anyway) delays nothing it has
not already seen coming. Sockets whose feed is gone refuse the ring and are removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

FOLDER = "doorbells"
# The mover lists the folder again this often (a worker started or stopped meanwhile).
RELIST_EVERY = 1.0


def doorbell_folder(var_dir: Path) -> Path:
    """Where the feeds' sockets are."""
    return var_dir / FOLDER


class Doorbell:
    """A feed's end: a socket that wakes `wait` when the mover rings."""

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "feed"
        self.path = folder / f"{safe}-{os.getpid()}.sock"
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a socket file left by a dead process with this pid
            self._socket.bind(str(self.path))
        except OSError:
            self._socket.close()
            raise
        self._socket.setblocking(False)
        self.rings = 0  # rings received

    def wait(self, timeout: float) -> bool:
        """Sleeps until a ring or `timeout` s; True if rung (every ring waiting is taken)."""
        ready, _, _ = select.select([self._socket], [], [], timeout)
        if not ready:
            return False
        rung = False
        while True:
            try:
                self._socket.recv(64)
            except BlockingIOError:
                break
            rung = True
        self.rings += rung
        return rung

    def ring_self(self) -> None:
        """Wakes a `wait` under way (from another thread: the feed stopping)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ringer:
            ringer.setblocking(False)
            with contextlib.suppress(OSError):  # full: it is awake soon anyway
                ringer.sendto(b"!", str(self.path))

    def close(self) -> None:
        self._socket.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Ringer:
    """The mover's end: rings every feed's socket in the folder."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._paths: list[str] = []
        self._listed = float("-inf")

    def ring(self) -> None:
        """One byte to every feed; never raises, never blocks."""
        if time.monotonic() - self._listed >= RELIST_EVERY:
            self._listed = time.monotonic()
            try:
                self._paths = [str(p) for p in self._folder.glob("*.sock")]
            except OSError:
                self._paths = []
        for path in self._paths:
            try:
                self._socket.sendto(b"!", path)
            except BlockingIOError:
                pass  # its buffer is full: rings are waiting for it already
            except (ConnectionRefusedError, FileNotFoundError):
                # Its feed is gone (the process died without removing the file).
                with contextlib.suppress(OSError):
                    os.unlink(path)
                self._listed = float("-inf")
            except OSError as exc:
                log.debug("ringing %s failed: %s", path, exc)

    def close(self) -> None:
        self._socket.close()
