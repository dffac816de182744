"""Sends SMS through Sparrow SMS's HTTP API (bot/channels/sparrow/api.py says what it is).

Sparrow returns no message id, so the SID recorded for a send is one of ours
(`sparrow-<uuid>`): unique, and never matched by a delivery report (Sparrow sends none).
It cannot list what it sent, so a send taken back from a worker that died mid-call goes out
again (`find_sent` is not an ability).

Each failure says whether Sparrow may have the message (`SendError.maybe_sent`): a
connection never opened, or an answer in Sparrow's error format, means it does not; a
reply that timed out or a connection dropped after the request went out means it may (see
api.answer_in_doubt and bot/channels/transport.py). Failover moves only the first kind.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from datetime import datetime
from typing import Any

import aiohttp
import requests
from requests.adapters import HTTPAdapter

from bot.channels.base import ChannelAbilities, SendResult, TransientSendError
from bot.channels.sparrow.api import (
    CREDIT_PATH,
    ROUTE,
    SEND_PATH,
    Credits,
    classify,
    national_number,
    parse_credits,
)
from bot.channels.sparrow.balance import Balance
from bot.channels.sparrow.settings import SparrowSettings
from bot.channels.transport import aiohttp_timeout, may_have_arrived
from bot.core.messages import Outbound
from bot.core.status import MessageStatus
from bot.settings import Settings

__all__ = ["ROUTE", "SparrowChannel"]

_TRANSPORT_ERRORS = (requests.RequestException, aiohttp.ClientError, TimeoutError)


class SparrowChannel:
    """The Sparrow SMS adapter: `send(outbound) -> SendResult` over HTTP."""

    abilities = ChannelAbilities(find_sent=False, templates=False, status_callbacks=False)

    def __init__(self, settings: Settings) -> None:
        own = settings.provider(ROUTE, SparrowSettings) or SparrowSettings()
        self.token = own.token or ""
        self.sender = own.sender or ""
        self.base = own.api_base
        self.timeout = settings.send_timeout_seconds
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(8, settings.send_concurrency))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # Read proxy variables once, not on every call (as the Twilio adapter does).
        self.session.trust_env = False
        self.session.proxies = urllib.request.getproxies()
        self._pool_size = settings.send_concurrency
        self._async: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self.balance = Balance(self.credits)  # /readyz and the dashboard show it

    def _form(self, message: Outbound) -> dict[str, str]:
        return {
            "token": self.token,
            "from": self.sender,
            "to": national_number(message.to),
            "text": message.body,
        }

    @staticmethod
    def _accepted() -> SendResult:
        # Sparrow "queued for delivery" and reports nothing later: "sent" is the last word.
        return SendResult(provider_id=f"sparrow-{uuid.uuid4().hex}", status=MessageStatus.SENT)

    def send(self, message: Outbound) -> SendResult:
        """Sends one SMS; raises TransientSendError or PermanentSendError (api.ERRORS)."""
        form = self._form(message)
        try:
            response = self.session.post(self.base + SEND_PATH, data=form, timeout=self.timeout)
            payload = _json(response.text)
        except _TRANSPORT_ERRORS as exc:
            raise _unreachable(exc) from exc
        error = classify(response.status_code, payload)
        if error is not None:
            raise error
        return self._accepted()

    async def send_async(self, message: Outbound) -> SendResult:
        """The same on the worker's event loop."""
        form = self._form(message)
        try:
            async with self._session().post(self.base + SEND_PATH, data=form) as response:
                status, payload = response.status, _json(await response.text())
        except _TRANSPORT_ERRORS as exc:
            raise _unreachable(exc) from exc
        error = classify(status, payload)
        if error is not None:
            raise error
        return self._accepted()

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        """Sparrow cannot list sent messages."""
        return []

    def credits(self) -> Credits:
        """The account's credit balance (`GET /v2/credit/`); raises SendError on failure."""
        try:
            response = self.session.get(
                self.base + CREDIT_PATH, params={"token": self.token}, timeout=self.timeout
            )
            payload = _json(response.text)
        except _TRANSPORT_ERRORS as exc:
            raise _unreachable(exc) from exc
        return parse_credits(response.status_code, payload)

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._async.get(loop)
        if session is None:  # made inside its loop, as aiohttp requires
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                timeout=aiohttp_timeout(self.timeout),
            )
            self._async[loop] = session
        return session

    async def aclose(self) -> None:
        """Closes this loop's HTTP session (the worker's sender calls it at shutdown)."""
        session = self._async.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()


def _unreachable(exc: BaseException) -> TransientSendError:
    """A call that failed in transport; whether Sparrow may have queued the message is what
    the HTTP library says of where it failed (bot/channels/transport.py)."""
    return TransientSendError(
        f"Sparrow unreachable: {exc!r}", provider=ROUTE, maybe_sent=may_have_arrived(exc)
    )


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
