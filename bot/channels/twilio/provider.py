"""Twilio as the rest of the service sees it (bot/channels/registry.py's contract)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.channels.base import ChannelAdapter, Provider
from bot.channels.twilio.errors import NAME, meaning
from bot.channels.twilio.statuses import STATUSES
from bot.core.messages import Channel
from bot.settings import Settings


def _senders(settings: Settings) -> Mapping[Channel, ChannelAdapter]:
    from bot.channels.twilio.sender import twilio_channels  # the library loads only if used

    return twilio_channels(settings)


PROVIDER = Provider(
    name=NAME,
    channels=(Channel.SMS, Channel.WHATSAPP),
    enabled=lambda settings: settings.twilio_enabled,
    make_senders=_senders,
    # The channels' default: messages whose row names no provider go through Twilio.
    default=True,
    webhook="bot.channels.twilio.webhook:bp",
    statuses=STATUSES,
    errors=meaning,
    secret_settings=frozenset({"twilio_auth_token", "twilio_webhook_shared_keys"}),
    # Its settings stay in bot/settings.py (twilio_*), as does its pace: it is the channels'
    # default adapter, paced as "sms" (1 segment/s per long code) and "whatsapp".
)
