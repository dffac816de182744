"""The open-loop load generator of signed Twilio webhooks, and the percentile every bench and
test reports with.

Open loop: each webhook is sent at its planned time whatever the answers to the earlier ones,
as Twilio delivers them; a slow service therefore sees requests pile up instead of the
generator politely waiting. Every request is signed and encoded before the clock starts, so
the generator's own CPU (on shared cores) is not taken from the service while it runs.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator


@dataclass(frozen=True)
class Account:
    """Whose webhooks these are: the Twilio account, its auth token (the signing key) and our
    number they are addressed to."""

    sid: str
    auth_token: str
    to: str


@dataclass(frozen=True)
class Planned:
    """One webhook delivery: when (seconds after the start), from whom, what."""

    at: float
    sender: str
    body: str
    sid: str = field(default_factory=lambda: "SM" + uuid.uuid4().hex)


@dataclass
class Outcome:
    """What became of one planned webhook."""

    planned: Planned
    status: int  # HTTP status of the last attempt; 0: no answer (connection error, timeout)
    seconds: float  # the last attempt's acknowledgement latency
    attempts: int = 1
    sent_at: float = 0.0  # epoch seconds when the first attempt went out


def at_rate(rate: float, count: int) -> list[float]:
    """Send times (seconds after the start) of `count` webhooks at a steady `rate` per second."""
    return [i / rate for i in range(count)]


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile `p` (0–100) of `values`; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered) / 100) - 1))]


def _signed(url: str, account: Account, planned: Planned) -> tuple[bytes, dict[str, str]]:
    form = {
        "MessageSid": planned.sid,
        "AccountSid": account.sid,
        "From": planned.sender,
        "To": account.to,
        "Body": planned.body,
        "NumMedia": "0",
    }
    validator = RequestValidator(account.auth_token)
    headers = {
        "X-Twilio-Signature": validator.compute_signature(url, form),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return urlencode(form).encode(), headers


async def deliver(
    url: str, plan: list[Planned], account: Account, retry: int = 0, timeout: float = 15.0
) -> list[Outcome]:
    """Sends every planned webhook on schedule (open loop) and returns the outcomes in plan
    order. A webhook answered 503 ("not stored") or not at all is delivered again a second
    later, up to `retry` times, as Twilio's fallback URL would."""
    prepared = [_signed(url, account, planned) for planned in plan]
    outcomes: list[Outcome | None] = [None] * len(plan)
    connector = aiohttp.TCPConnector(limit=512)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(i: int) -> None:
            body, headers = prepared[i]
            sent_at = time.time()
            attempts = 0
            while True:
                attempts += 1
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                seconds = time.perf_counter() - start
                if status in (0, 503) and attempts <= retry:
                    await asyncio.sleep(1.0)
                    continue
                outcomes[i] = Outcome(plan[i], status, seconds, attempts, sent_at)
                return

        order = sorted(range(len(plan)), key=lambda i: plan[i].at)
        tasks = []
        t0 = time.perf_counter()
        for i in order:
            delay = t0 + plan[i].at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return [outcome for outcome in outcomes if outcome is not None]


def send(
    url: str, plan: list[Planned], account: Account, retry: int = 0, timeout: float = 15.0
) -> list[Outcome]:
    """`deliver` from synchronous code."""
    return asyncio.run(deliver(url, plan, account, retry, timeout))
