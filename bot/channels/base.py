"""The channel protocol every adapter implements, and the errors it may raise.

What a channel can do beyond sending is declared, not discovered: each adapter says which
optional abilities it has (`ChannelAbilities`) and implements every method of the protocol,
answering "not supported" where it lacks one. A new provider is one module that fills in
this protocol (see bot/channels/twilio.py and bot/channels/console.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class ChannelAbilities:
    """The optional things a channel can do.

    Attributes:
        find_sent: it can list the messages it accepted (`ChannelAdapter.find_sent`), so a
            send taken back from a worker that died mid-call is recorded instead of sent
            twice. Without it such a send goes out again.
        templates: it sends approved templates (`Outbound.content_sid`), as WhatsApp needs
            outside the 24-hour window.
        status_callbacks: the provider reports delivery later (the status webhook); without
            it the status `send` returns is the last one.
    """

    find_sent: bool = False
    templates: bool = False
    status_callbacks: bool = False


NO_ABILITIES = ChannelAbilities()


class ChannelAdapter(Protocol):
    """Hands one message to a provider."""

    abilities: ChannelAbilities

    def send(self, message: Outbound) -> SendResult:
        """Sends `message`; raises TransientSendError or PermanentSendError on failure."""
        ...

    async def send_async(self, message: Outbound) -> SendResult:
        """The same, on the caller's event loop."""
        ...

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        """Messages the provider accepted for this recipient with this text since `since`,
        newest first; [] when `abilities.find_sent` is False. Raises SendError when the
        provider cannot be asked."""
        ...

    async def aclose(self) -> None:
        """Releases what the adapter holds on the sender's event loop (at shutdown)."""
        ...
