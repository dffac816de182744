"""The console channel: prints outbound messages instead of sending them.

Used by the simulator and, when no Twilio account is configured, for every message: the
outbox row is the stored copy.
"""

from __future__ import annotations

import sys
import threading
import uuid
from typing import TextIO

from bot.channels.base import SendResult
from bot.core.messages import Outbound


class ConsoleChannel:
    """Writes each message to a stream and reports it delivered."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: Outbound) -> SendResult:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(f"[{message.channel} → {message.to}] {message.body}\n")
            stream.flush()
        return SendResult(provider_id=f"CON{uuid.uuid4().hex}", status="delivered")

    async def send_async(self, message: Outbound) -> SendResult:
        return self.send(message)
