"""The console channel: prints outbound messages instead of sending them.

Used by the simulator and, for a channel no enabled provider carries by default (Twilio
without an account: `make run`), for every message: the outbox row is the stored copy. The
console is a log: it shows a masked number and the message's id and length, and the body
only where LOG_MESSAGE_BODIES asks for it (never in production, see bot.settings).
"""

from __future__ import annotations

import sys
import threading
import uuid
from datetime import datetime
from typing import TextIO

from bot.channels.base import NO_ABILITIES, SendResult
from bot.core.messages import Outbound
from bot.core.status import MessageStatus
from bot.privacy import mask_phone


class ConsoleChannel:
    """Writes a line for each message to a stream and reports it delivered.

    Args:
        stream: where to write (standard output when omitted).
        show_bodies: write the message text too (development only: LOG_MESSAGE_BODIES).
    """

    # Nothing leaves the machine: nothing to look up, no templates, no later reports.
    abilities = NO_ABILITIES

    def __init__(self, stream: TextIO | None = None, show_bodies: bool = False) -> None:
        self._stream = stream
        self._show_bodies = show_bodies
        self._lock = threading.Lock()

    def send(self, message: Outbound) -> SendResult:
        stream = self._stream or sys.stdout
        provider_id = f"CON{uuid.uuid4().hex}"
        line = f"[{message.channel} → {mask_phone(message.to)}] {message.kind} {provider_id}"
        line += f", {len(message.body)} chars"
        if self._show_bodies:
            line += f": {message.body}"
        with self._lock:
            stream.write(line + "\n")
            stream.flush()
        return SendResult(provider_id=provider_id, status=MessageStatus.DELIVERED)

    async def send_async(self, message: Outbound) -> SendResult:
        return self.send(message)

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        return []

    async def aclose(self) -> None:
        return None
