"""The channel protocol every adapter implements, and the errors it may raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.core.messages import Outbound


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted a message."""

    provider_id: str
    status: str


class SendError(Exception):
    """A send failed. `code` is the provider's error code, if it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    """Worth retrying later: timeouts, connection errors, 5xx, 429."""


class PermanentSendError(SendError):
    """Retrying will not help: invalid number, opted out (21610), bad request."""


class ChannelAdapter(Protocol):
    """Hands one message to a provider."""

    def send(self, message: Outbound) -> SendResult:
        """Sends `message`; raises TransientSendError or PermanentSendError on failure."""
        ...

    async def send_async(self, message: Outbound) -> SendResult:
        """The same, on the caller's event loop."""
        ...
