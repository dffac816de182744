"""Sends SMS through a pool of Android phones running the SMS gateway app (api.py says what
its API is; pool.py how the phones share the work).

One `send`:
1. Handoffs of the same recipient and text still in doubt (a phone may have taken them, then
   stopped answering) are settled first by asking their phone `GET /message/{id}`: found,
   the message is adopted (recorded with that id, not sent again); 404, it never took it;
   no answer, the send waits (TransientSendError: retried later) rather than risk a
   duplicate.
2. Phones out of the pool whose probe is due are asked `GET /health` (local) or looked up in
   the cloud's device list; one that answers is back in the pool.
3. The live phone used longest ago with pace budget gets the message, under an id we chose
   (written down first, pool.handing). A phone that cannot be reached (connection refused,
   connect timeout) never got it: the failure counts against it and the next phone is
   tried at once, so a phone dying mid-broadcast loses nothing. A phone that fails after
   the request went out (read timeout, dropped connection), or answers something that does
   not say whether it took the message (a 2xx without it, a 5xx not from the app:
   api.answer_in_doubt), is asked for the id before anything else happens (step 1's rule).
4. 202: recorded as `android:<id>` with the state the phone reported; the status webhook
   (webhook.py) moves it on. A 4xx about the message is permanent (api.classify).

`find_sent` is step 1 on its own: the outbox asks it for a send taken back from a worker
that died, or one that may have gone out before failover moves it to another route.
Every failure says whether a phone may have the message (`maybe_sent`, bot/failover.py):
False when no phone took it (none live, all at their pace, its error answers), True while a
phone that may have it cannot be asked.

The calls are blocking (`requests`): `send_async` runs `send` in a thread. A phone sends a
few messages a minute; the event loop gains nothing from native async calls here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
import uuid
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bot.channels.android.api import (
    CLOUD_DEVICES_PATH,
    CLOUD_SEND_PATH,
    ID_PREFIX,
    LOCAL_HEALTH_PATH,
    LOCAL_SEND_PATH,
    ROUTE,
    classify,
    counts_against_phone,
    message_body,
    state_of,
)
from bot.channels.android.pool import ACCEPTED, DOUBT, REFUSED, Pool, PoolCollector
from bot.channels.android.settings import AndroidGateway, AndroidPhone
from bot.channels.base import ChannelAbilities, SendResult, TransientSendError
from bot.channels.transport import may_have_arrived
from bot.core.messages import Outbound
from bot.core.segments import count_segments
from bot.core.status import MessageStatus
from bot.db.database import Database
from bot.settings import Settings

__all__ = ["ROUTE", "AndroidChannel"]

log = logging.getLogger(__name__)

# A cloud device not seen for this long is not answering (the docs: an idle phone may
# connect only every 15 minutes).
CLOUD_STALE = timedelta(minutes=20)


class Unreachable(Exception):
    """The phone could not be asked. `maybe_sent`: whether the request may have reached it
    (False only when the connection was never opened: bot/channels/transport.py)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.maybe_sent = may_have_arrived(cause)


class AndroidChannel:
    """The Android SMS gateway adapter: a pool of phones as one SMS provider."""

    abilities = ChannelAbilities(find_sent=True, templates=False, status_callbacks=True)

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        gateway = settings.provider(ROUTE, AndroidGateway)
        assert gateway is not None, "ANDROID_GATEWAY_PHONES/DEVICES is not set"
        self.gateway: AndroidGateway = gateway
        self.cloud = self.gateway.mode == "cloud"
        # A phone that is off does not refuse, it is silent: give up connecting sooner.
        self.timeout = (min(3.0, settings.send_timeout_seconds), settings.send_timeout_seconds)
        # How long a send may wait for a phone's pace budget before it is retried later.
        self.wait_budget = max(1.0, settings.claim_seconds / 2)
        self.db = db or Database(settings.database_url)
        self.pool = Pool(
            self.gateway, self.db, settings.phone_key, settings.redis_url, var_dir=settings.var_dir
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=len(self.gateway.phones), pool_maxsize=4)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # One connection per call: a phone that died is then "connection refused" (never
        # reached, safe to send elsewhere), not a dead kept-alive socket (in doubt).
        self.session.headers["Connection"] = "close"
        self.session.trust_env = False  # proxies read once (as the Twilio adapter does)
        self.session.proxies = urllib.request.getproxies()
        self.balance = self.pool  # `.summary()`: /readyz and the dashboard show the pool
        self.collector = PoolCollector(self.pool)  # /metrics
        self.panel = self.pool.panel  # the dashboard's Settings page: one row per phone
        if db is None:  # ours: released when the adapter goes
            weakref.finalize(self, self.db.dispose)

    # -- the protocol ---------------------------------------------------------------------

    def send(self, message: Outbound) -> SendResult:
        """Sends one SMS through the pool; raises TransientSendError or PermanentSendError."""
        digest = self.pool.digest(message.to, message.body)
        adopted = self._settle_doubts(digest)
        if adopted is not None:
            return adopted
        self._probe_due()
        cost = count_segments(message.body).segments
        deadline = time.monotonic() + self.wait_budget
        tried: set[str] = set()
        while True:
            live = [p for p in self.pool.live_order() if p.name not in tried]
            if not live:
                raise _not_sent(
                    "no live phone in the Android gateway pool"
                    + (f" (tried {', '.join(sorted(tried))})" if tried else "")
                )
            phone = next((p for p in live if self.pool.take_turn(p.name, cost)), None)
            if phone is None:
                wait = min(self.pool.wait_for(p.name) for p in live)
                if time.monotonic() + wait > deadline:
                    busy = "every live phone of the Android gateway is at its pace"
                    raise _not_sent(busy, down=False)
                time.sleep(min(wait, 1.0))
                continue
            result = self._hand_to(phone, message, digest)
            if result is not None:
                return result
            tried.add(phone.name)

    async def send_async(self, message: Outbound) -> SendResult:
        """The same, in a thread (see the module's docstring)."""
        return await asyncio.to_thread(self.send, message)

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        """The message if a phone it was handed to in doubt has it (step 1: adopted), else
        []; raises TransientSendError when such a phone cannot be asked."""
        adopted = self._settle_doubts(self.pool.digest(message.to, message.body))
        return [adopted] if adopted is not None else []

    async def aclose(self) -> None:
        """Nothing is held per event loop."""

    def close(self) -> None:
        """Releases the pool's database connections (tests; a process exits otherwise)."""
        self.db.dispose()

    # -- one phone ------------------------------------------------------------------------

    def _hand_to(self, phone: AndroidPhone, message: Outbound, digest: str) -> SendResult | None:
        """The phone's answer: a result, None when it failed (try another), or raises."""
        gateway_id = ID_PREFIX + uuid.uuid4().hex
        self.pool.handing(gateway_id, phone.name, digest)
        body = message_body(gateway_id, message.to, message.body, phone.device_id)
        try:
            status, payload = self._call("POST", phone, self._send_path(), body)
        except Unreachable as exc:
            if exc.maybe_sent:
                return self._ask_after_doubt(gateway_id, phone, str(exc.__cause__ or exc))
            self.pool.settle(gateway_id, REFUSED)
            self._phone_failed(phone, str(exc.__cause__ or exc))
            self.pool.used(phone.name, sent=False)
            return None
        error = classify(status, payload)
        if error is None:
            self.pool.settle(gateway_id, ACCEPTED)
            self.pool.succeeded(phone.name)
            self.pool.used(phone.name, sent=True)
            return _result(gateway_id, payload)
        if error.maybe_sent:  # an answer that does not say whether the phone took it
            return self._ask_after_doubt(gateway_id, phone, str(error))
        self.pool.settle(gateway_id, REFUSED)
        self.pool.used(phone.name, sent=False)
        if counts_against_phone(error):
            self._phone_failed(phone, str(error))
            return None
        raise error

    def _ask_after_doubt(self, gateway_id: str, phone: AndroidPhone, why: str) -> SendResult | None:
        """After a call that may have reached the phone: asks it before anything else (the
        result if it took the message; raises TransientSendError, in doubt, if it cannot be
        asked). None when it never took it: the failure counts against it, and another
        phone may send."""
        adopted = self._settle(gateway_id, phone)
        if adopted is not None:
            return adopted
        self._phone_failed(phone, why)
        self.pool.used(phone.name, sent=False)
        return None

    def _settle_doubts(self, digest: str) -> SendResult | None:
        for gateway_id, name in self.pool.doubts(digest):
            phone = self.pool.phones.get(name)
            if phone is None:  # the phone was removed from the settings: it cannot be asked
                log.warning("handoff %s: phone %r is no longer configured", gateway_id, name)
                self.pool.settle(gateway_id, REFUSED)
                continue
            adopted = self._settle(gateway_id, phone)
            if adopted is not None:
                return adopted
        return None

    def _settle(self, gateway_id: str, phone: AndroidPhone) -> SendResult | None:
        """Asks `phone` whether it took `gateway_id`: the result if it did (adopted), None if
        not; raises TransientSendError when it cannot be asked (the send waits for it)."""
        try:
            status, payload = self._call("GET", phone, f"{self._send_path()}/{gateway_id}")
        except Unreachable as exc:
            self.pool.settle(gateway_id, DOUBT)
            self._phone_failed(phone, str(exc.__cause__ or exc))
            raise _in_doubt(
                f"in doubt: phone {phone.name} may have taken this message and is not "
                "answering; it is not sent elsewhere until that phone says"
            ) from exc
        if status == 404:
            self.pool.settle(gateway_id, REFUSED)
            return None
        if status == 200 and isinstance(payload, dict):
            if self.pool.settle(gateway_id, ACCEPTED):
                log.warning("adopted %s: phone %s had taken it", gateway_id, phone.name)
                self.pool.succeeded(phone.name)
                return _result(gateway_id, payload)
            return None  # another send adopted it meanwhile
        self.pool.settle(gateway_id, DOUBT)
        self._phone_failed(phone, f"HTTP {status} to a message lookup")
        raise _in_doubt(f"in doubt: phone {phone.name} answered {status} to a lookup")

    def _phone_failed(self, phone: AndroidPhone, error: str) -> None:
        if self.pool.failed(phone.name, error):
            log.warning("phone %s taken out of the Android gateway pool: %s", phone.name, error)

    # -- probes ---------------------------------------------------------------------------

    def _probe_due(self) -> None:
        for phone in self.pool.due_probes():
            if self.probe(phone):
                log.warning("phone %s answers again: back in the Android gateway pool", phone.name)
                self.pool.succeeded(phone.name)

    def probe(self, phone: AndroidPhone) -> bool:
        """Whether the phone answers: local `GET /health` 2xx; cloud, seen recently."""
        try:
            if not self.cloud:
                status, _ = self._call("GET", phone, LOCAL_HEALTH_PATH, auth=False)
                return 200 <= status < 300
            status, payload = self._call("GET", phone, CLOUD_DEVICES_PATH)
        except Unreachable as exc:
            self.pool.failed(phone.name, str(exc.__cause__ or exc))
            return False
        if status != 200 or not isinstance(payload, list):
            return False
        devices = [d for d in payload if isinstance(d, dict)]
        device = next((d for d in devices if d.get("id") == phone.device_id), None)
        seen = _when(device.get("lastSeen")) if device else None
        return seen is not None and datetime.now(UTC) - seen < CLOUD_STALE

    # -- HTTP -----------------------------------------------------------------------------

    def _send_path(self) -> str:
        return CLOUD_SEND_PATH if self.cloud else LOCAL_SEND_PATH

    def _call(
        self, method: str, phone: AndroidPhone, path: str, body: Any = None, auth: bool = True
    ) -> tuple[int, Any]:
        try:
            response = self.session.request(
                method,
                phone.base_url + path,
                json=body,
                auth=(phone.username, phone.password) if auth else None,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise Unreachable(exc) from exc
        try:
            payload = json.loads(response.text) if response.text else None
        except ValueError:
            payload = None
        return response.status_code, payload


def _not_sent(text: str, down: bool = True) -> TransientSendError:
    """A failure before any phone took the message: failover may move it (bot/failover.py).
    `down=False`: the pool is only busy (every live phone at its pace), not down."""
    return TransientSendError(text, provider=ROUTE, maybe_sent=False, provider_down=down)


def _in_doubt(text: str) -> TransientSendError:
    """A phone may have the message: it must not go another way until that phone says."""
    return TransientSendError(text, provider=ROUTE, maybe_sent=True)


def _result(gateway_id: str, payload: Any) -> SendResult:
    status = state_of(payload) or MessageStatus.QUEUED
    return SendResult(provider_id=f"{ROUTE}:{gateway_id}", status=status)


def _when(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
