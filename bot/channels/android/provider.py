"""The Android SMS gateway as a provider (the contract is bot/channels/registry.py's)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.channels.android.settings import AndroidGateway
from bot.channels.android.statuses import STATUSES
from bot.channels.base import ChannelAdapter, ErrorMeaning, Provider
from bot.core.messages import Channel
from bot.settings import Settings


def _senders(settings: Settings) -> Mapping[Channel, ChannelAdapter]:
    from bot.channels.android.sender import AndroidChannel

    return {Channel.SMS: AndroidChannel(settings)}


def _errors(code: int | None) -> ErrorMeaning | None:
    # The app has no error codes; its HTTP statuses are classified in api.classify.
    return None


PROVIDER = Provider(
    name="android",
    channels=(Channel.SMS,),
    enabled=lambda settings: settings.provider("android", AndroidGateway) is not None,
    make_senders=_senders,
    default=False,
    webhook="bot.channels.android.webhook:bp",
    statuses=STATUSES,
    errors=_errors,
    # Kept out of AndroidGateway's repr (the phones' credentials are too); named for the
    # dashboard, which shows the rest (mode, phones, pace).
    secret_settings=frozenset({"android_signing_key"}),
)
