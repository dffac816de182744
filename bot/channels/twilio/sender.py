"""Sends Twilio SMS and WhatsApp through the official `twilio` library's Messages API."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.request
from datetime import datetime
from typing import Any

import aiohttp
import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from bot.channels.base import (
    ChannelAbilities,
    ErrorMeaning,
    PermanentSendError,
    SendError,
    SendResult,
    TransientSendError,
)
from bot.channels.form import form_encode
from bot.channels.transport import aiohttp_timeout, may_have_arrived
from bot.channels.twilio.errors import NAME, meaning
from bot.channels.twilio.statuses import ours
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


class _AsyncTwilioHttpClient(AsyncTwilioHttpClient):
    """The library's aiohttp client with a sized connection pool and a total timeout (its
    connect step timed apart: bot/channels/transport.py)."""

    def __init__(self, timeout: float, pool_size: int) -> None:
        super().__init__(pool_connections=False)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool_size),
            timeout=aiohttp_timeout(timeout),
        )

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """The library's call, under the session's timeout. The library passes
        `timeout=None` on every call, which aiohttp reads as "no time limit at all": a call
        Twilio never answered would hang for ever instead of failing (maybe sent)."""
        headers = dict(headers or {})
        if auth is not None:  # the header itself: aiohttp deprecates its BasicAuth
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        body: bytes | None = None
        if data:
            # Encoded here, as the library's requests client does: aiohttp's FormData takes
            # a third of a send's CPU for the same bytes.
            body = _form(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        kwargs: dict[str, Any] = {
            "method": method.upper(),
            "url": url,
            "params": params,
            "data": body,
            "headers": headers,
            "allow_redirects": allow_redirects,
        }
        if timeout is not None:
            kwargs["timeout"] = aiohttp_timeout(timeout)
        # The library formats its log lines (every header) before the logger drops them.
        logged = self.logger.isEnabledFor(logging.INFO)
        if logged:
            self.log_request(kwargs)
        assert self.session is not None
        async with self.session.request(**kwargs) as response:
            answer = Response(response.status, await response.text(), response.headers)
        if logged:
            self.log_response(answer.status_code, answer)
        return answer


def _form(data: dict[str, object]) -> bytes:
    """`data` form-encoded as requests encodes it: a list gives a field per item, a None
    value no field at all."""
    pairs = []
    for key, value in data.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is not None:
                pairs.append((key, item))
    return form_encode(pairs)


class AsyncClients:
    """One async Twilio client per event loop, made inside that loop (aiohttp requires it)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[asyncio.AbstractEventLoop, tuple[Client, _AsyncTwilioHttpClient]] = {}

    def get(self) -> Client:
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            settings = self._settings
            http = _AsyncTwilioHttpClient(settings.send_timeout_seconds, settings.send_concurrency)
            client = Client(
                settings.twilio_account_sid, settings.twilio_auth_token, http_client=http
            )
            client.api.base_url = settings.twilio_api_base
            self._clients[loop] = (client, http)
        return self._clients[loop][0]

    async def close(self) -> None:
        """Closes the current loop's client."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].close()


class TwilioChannel:
    """Sends through Twilio; one instance per channel (SMS or WhatsApp), sharing a client."""

    def __init__(
        self, settings: Settings, channel: Channel, client: Client, async_clients: AsyncClients
    ) -> None:
        self.channel = channel
        self.client = client
        self.async_clients = async_clients
        self.status_callback = (
            f"{settings.public_url}/webhooks/twilio/status" if settings.public_url else None
        )
        if channel is Channel.WHATSAPP:
            self.from_ = settings.twilio_whatsapp_from
        else:
            self.from_ = settings.twilio_sms_from
        self.messaging_service_sid = settings.twilio_messaging_service_sid
        # The Messages list API finds what a dead worker had sent; the Content API sends
        # templates; Twilio reports delivery only when we give it our callback URL.
        self.abilities = ChannelAbilities(
            find_sent=True,
            templates=True,
            status_callbacks=self.status_callback is not None,
        )

    def _params(self, message: Outbound) -> dict[str, str]:
        to = f"whatsapp:{message.to}" if self.channel is Channel.WHATSAPP else message.to
        params: dict[str, str] = {"to": to}
        if message.content_sid:
            params["content_sid"] = message.content_sid
            params["content_variables"] = json.dumps(
                dict(message.content_variables or {}), ensure_ascii=False
            )
        else:
            params["body"] = message.body
        if self.from_:
            params["from_"] = self.from_
        elif self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            raise PermanentSendError(
                f"no Twilio sender configured for {self.channel}", provider=NAME
            )
        if self.status_callback:
            params["status_callback"] = self.status_callback
        return params

    def send(self, message: Outbound) -> SendResult:
        params = self._params(message)
        try:
            created = self.client.messages.create(**params)
        except _PROVIDER_ERRORS as exc:
            raise _classify(exc) from exc
        return SendResult(provider_id=str(created.sid), status=_status(created.status))

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        """Messages Twilio accepted for this recipient with this text since `since`, newest
        first: how a recovered send learns it had already gone out."""
        to = f"whatsapp:{message.to}" if self.channel is Channel.WHATSAPP else message.to
        try:
            recent = self.client.messages.list(to=to, limit=50)
        except _PROVIDER_ERRORS as exc:
            # Twilio could not be asked: whether it has the message is still unknown.
            error = _classify(exc)
            error.maybe_sent = True
            raise error from exc
        found = []
        for item in recent:
            created = item.date_created
            if created is not None and created < since:
                continue
            if item.direction not in (None, "outbound-api"):
                continue
            if message.content_sid is None and (item.body or "") != message.body:
                continue
            found.append(SendResult(provider_id=str(item.sid), status=_status(item.status)))
        return found

    async def aclose(self) -> None:
        """Closes this loop's async client (the worker's sender calls it at shutdown)."""
        await self.async_clients.close()

    async def send_async(self, message: Outbound) -> SendResult:
        params = self._params(message)
        try:
            created = await self.async_clients.get().messages.create_async(**params)
        except _PROVIDER_ERRORS as exc:
            raise _classify(exc) from exc
        return SendResult(provider_id=str(created.sid), status=_status(created.status))


_PROVIDER_ERRORS = (TwilioException, requests.RequestException, aiohttp.ClientError, TimeoutError)


def _status(reported: object) -> str:
    return ours(str(reported) if reported else None)


def _classify(exc: Exception) -> SendError:
    """Maps the library's and the transport's errors to transient or permanent (by the HTTP
    status), with what Twilio's error code means (errors.py) and whether Twilio may have
    taken the message all the same (`maybe_sent`, bot/failover.py)."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status, code = int(exc.status), exc.code
        text = f"Twilio {status}: {getattr(exc, 'msg', None) or exc}"
        # The library puts the HTTP status where Twilio's error code goes when the body
        # carried none: such an answer is not Twilio's own (a proxy's, say).
        maybe = _in_doubt(status, twilio_answered=code is not None and code != status)
        down = status == 429 or status >= 500 or meaning(code) is ErrorMeaning.UNREACHABLE
        kind = TransientSendError if down else PermanentSendError
        return kind(text, code, meaning(code), NAME, maybe_sent=maybe)
    if isinstance(exc, TwilioException):  # the library could not read a 2xx answer
        return TransientSendError(f"Twilio: {exc}", provider=NAME, maybe_sent=True)
    return TransientSendError(
        f"Twilio unreachable: {exc!r}", provider=NAME, maybe_sent=may_have_arrived(exc)
    )


def _in_doubt(status: int, twilio_answered: bool) -> bool:
    """Whether an HTTP error may come after Twilio created the message: a 5xx without
    Twilio's error body (a proxy's 500/502/504), except 503 (by HTTP's definition not
    handled). Twilio's own error answer, 429 and any 4xx mean it did not take it."""
    return status >= 500 and status != 503 and not twilio_answered


def twilio_channels(settings: Settings) -> dict[Channel, TwilioChannel]:
    """The SMS and WhatsApp adapters sharing one pooled client."""
    client = make_client(settings)
    async_clients = AsyncClients(settings)
    return {
        ch: TwilioChannel(settings, ch, client, async_clients)
        for ch in (Channel.SMS, Channel.WHATSAPP)
    }
