"""Twilio SMS and WhatsApp through the official `twilio` library's Messages API."""

from __future__ import annotations

import urllib.request

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from bot.channels.base import PermanentSendError, SendResult, TransientSendError
from bot.core.messages import Channel, Outbound
from bot.settings import Settings


def make_client(settings: Settings) -> Client:
    """A Twilio client with a connection pool as large as the worker's send concurrency.

    `TWILIO_API_BASE` replaces api.twilio.com, for tests and Twilio-compatible providers.
    """
    http_client = TwilioHttpClient(pool_connections=True, timeout=settings.send_timeout_seconds)
    assert http_client.session is not None
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(8, settings.send_concurrency))
    http_client.session.mount("https://", adapter)
    http_client.session.mount("http://", adapter)
    # requests re-reads proxy variables from the environment on every call (a measurable cost
    # per message); read them once here instead.
    http_client.session.trust_env = False
    http_client.session.proxies = urllib.request.getproxies()
    client = Client(
        settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client
    )
    client.api.base_url = settings.twilio_api_base
    return client


class TwilioChannel:
    """Sends through Twilio; one instance per channel (SMS or WhatsApp), sharing a client."""

    def __init__(self, settings: Settings, channel: Channel, client: Client) -> None:
        self.channel = channel
        self.client = client
        self.status_callback = (
            f"{settings.public_url}/webhooks/twilio/status" if settings.public_url else None
        )
        if channel is Channel.WHATSAPP:
            self.from_ = settings.twilio_whatsapp_from
        else:
            self.from_ = settings.twilio_sms_from
        self.messaging_service_sid = settings.twilio_messaging_service_sid

    def send(self, message: Outbound) -> SendResult:
        to = f"whatsapp:{message.to}" if self.channel is Channel.WHATSAPP else message.to
        params: dict[str, str] = {"to": to, "body": message.body}
        if self.from_:
            params["from_"] = self.from_
        elif self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            raise PermanentSendError(f"no Twilio sender configured for {self.channel}")
        if self.status_callback:
            params["status_callback"] = self.status_callback
        try:
            created = self.client.messages.create(**params)
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TransientSendError(f"Twilio {exc.status}: {exc.msg}", exc.code) from exc
            raise PermanentSendError(f"Twilio {exc.status}: {exc.msg}", exc.code) from exc
        except (requests.RequestException, TwilioException) as exc:
            raise TransientSendError(f"Twilio unreachable: {exc}") from exc
        return SendResult(provider_id=str(created.sid), status=str(created.status or "queued"))


def twilio_channels(settings: Settings) -> dict[Channel, TwilioChannel]:
    """The SMS and WhatsApp adapters sharing one pooled client."""
    client = make_client(settings)
    return {ch: TwilioChannel(settings, ch, client) for ch in (Channel.SMS, Channel.WHATSAPP)}
