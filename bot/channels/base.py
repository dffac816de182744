"""The channel protocol every adapter implements, and the errors it may raise.

What a channel can do beyond sending is declared, not discovered: each adapter says which
optional abilities it has (`ChannelAbilities`) and implements every method of the protocol,
answering "not supported" where it lacks one. A provider is one folder under bot/channels/
whose provider.py describes it with a `Provider` (bot/channels/registry.py finds it; see
bot/channels/twilio/ and bot/channels/sparrow/); bot/channels/console.py is the fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from bot.core.messages import Channel, Outbound
from bot.core.status import MessageStatus
from bot.settings import Settings


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted a message."""

    provider_id: str
    status: str


class ErrorMeaning(StrEnum):
    """What a provider's error means for the message and the contact.

    Each provider's error table maps its codes to one of these; the outbox acts on the
    meaning and never sees a provider's code table.
    """

    RETRY = "retry"  # worth trying again later (the provider or the network is busy)
    FAILED = "failed"  # this message failed; nothing is known about the contact
    OPTED_OUT = "opted_out"  # the person opted out at the provider: stop messaging them
    BAD_NUMBER = "bad_number"  # the number cannot receive on this channel
    # The channel cannot deliver to anyone now (the platform is down or blocked, our sender
    # is cut off): counts against the route's health like a provider that does not answer,
    # whether the send's answer or a later delivery report says so.
    UNREACHABLE = "unreachable"


class SendError(Exception):
    """A send failed.

    Attributes:
        code: the provider's error code, if it gave one.
        meaning: what it means (by default RETRY for a transient error, FAILED otherwise).
        provider: the provider's name (`Provider.name`), for the consent log's reason.
        maybe_sent: whether the provider may have the message after all. Adapters set
            it: False when the request never reached the provider (connection refused,
            connect timeout) or it answered with its own error; True when it may have
            taken it (a reply timed out or the connection dropped after the request was
            written, a 5xx that is not the provider's answer). None (not known) counts as
            True: failover never moves such a message unless the provider, asked, says it
            lacks it (bot/failover.py `maybe_delivered`).
        provider_down: False when the failure says "busy" (at its pace), not "down": it
            does not count toward taking the route out (bot/failover.py).
    """

    default_meaning = ErrorMeaning.FAILED

    def __init__(
        self,
        message: str,
        code: int | None = None,
        meaning: ErrorMeaning | None = None,
        provider: str | None = None,
        *,
        maybe_sent: bool | None = None,
        provider_down: bool = True,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.meaning = meaning or self.default_meaning
        self.provider = provider
        self.maybe_sent = maybe_sent
        self.provider_down = provider_down


class TransientSendError(SendError):
    """Worth retrying later: timeouts, connection errors, 5xx, 429."""

    default_meaning = ErrorMeaning.RETRY


class PermanentSendError(SendError):
    """Retrying will not help: invalid number, opted out (Twilio's 21610), bad request."""


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


@dataclass(frozen=True)
class Provider:
    """Everything the rest of the service needs to know about one provider.

    Each provider folder's provider.py defines one, named `PROVIDER`; bot/channels/registry.py
    finds them (its docstring is the contract). Nothing outside the folder names a provider.

    Attributes:
        name: the provider's name, as messages and contacts record it (`messages.provider`,
            `contacts.last_provider`) and inbound messages carry it (`Inbound.route`).
        channels: the channels it carries.
        enabled: whether the settings configure it.
        make_senders: its outbound adapters by channel, built from the settings (called once
            per process, only when `enabled`).
        default: True: when enabled its adapters are the channels' default (messages whose
            row names no provider go through it, as Twilio). False: it is a route, used for
            messages whose row names it (it must then carry exactly one channel).
        webhook: "module:attribute" of its Flask blueprint, loaded by bot.app at start (a
            string so this adapter-layer object never imports the web layer); None when the
            provider calls no URL of ours. Its routes must live under /webhooks/<name>/.
        statuses: its delivery statuses (as it reports them, lower case) mapped to ours.
        errors: its error code (None: it gave none) -> what it means; codes it does not know
            answer None and the error's own kind decides (transient: retry).
        secret_settings: the dashboard's settings rows it shows only as "(set)": Settings
            fields, or "<name>_<field>" for a field of its own settings (the fields its
            settings.py keeps out of their repr are masked anyway).

    Its settings are not declared here: its folder's settings.py is found by convention
    (registry.py's contract) and parsed into `Settings.providers`; so is its broadcast pace
    (the settings' `pace_per_second`).
    """

    name: str
    channels: tuple[Channel, ...]
    enabled: Callable[[Settings], bool]
    make_senders: Callable[[Settings], Mapping[Channel, ChannelAdapter]]
    default: bool = False
    webhook: str | None = None
    statuses: Mapping[str, MessageStatus] = field(default_factory=dict)
    errors: Callable[[int | None], ErrorMeaning | None] = lambda code: None
    secret_settings: frozenset[str] = frozenset()

    def status(self, reported: str) -> str:
        """Our status for a status the provider reported; unknown ones are kept as reported
        (lower case): stored with the report, never applied to the message."""
        reported = reported.strip().lower()
        return self.statuses.get(reported, reported)

    def meaning(self, code: int | None, transient: bool = False) -> ErrorMeaning:
        """What error `code` means; without a table entry, RETRY if `transient` else FAILED."""
        known = self.errors(code)
        if known is not None:
            return known
        return ErrorMeaning.RETRY if transient else ErrorMeaning.FAILED
