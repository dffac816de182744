"""Sparrow SMS as the rest of the service sees it (bot/channels/registry.py's contract)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.channels.base import ChannelAdapter, Provider
from bot.channels.sparrow.api import ROUTE, meaning
from bot.channels.sparrow.settings import SparrowSettings
from bot.channels.sparrow.statuses import SENT_STATUS
from bot.core.messages import Channel
from bot.settings import Settings


def _senders(settings: Settings) -> Mapping[Channel, ChannelAdapter]:
    from bot.channels.sparrow.sender import SparrowChannel

    return {Channel.SMS: SparrowChannel(settings)}


def _enabled(settings: Settings) -> bool:
    own = settings.provider(ROUTE, SparrowSettings)
    return own is not None and own.enabled


PROVIDER = Provider(
    name=ROUTE,
    channels=(Channel.SMS,),
    enabled=_enabled,
    make_senders=_senders,
    # A route: replies go through Sparrow to the people who wrote through it.
    default=False,
    webhook="bot.channels.sparrow.webhook:bp",
    statuses={SENT_STATUS.value: SENT_STATUS},  # no delivery reports (statuses.py)
    errors=meaning,
    # Also kept out of SparrowSettings' repr; named here so the dashboard masks them.
    secret_settings=frozenset({"sparrow_token", "sparrow_inbound_token"}),
)
