"""An open-loop load generator of signed Twilio webhooks (tests and benchmarks)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
from twilio.request_validator import RequestValidator

from tests.support.builders import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM


@dataclass(frozen=True)
class Planned:
    """One webhook delivery: when (seconds after the start), from whom, what."""

    at: float
    sender: str
    body: str
    sid: str = field(default_factory=lambda: "SM" + uuid.uuid4().hex)


@dataclass
class Outcome:
    planned: Planned
    status: int  # 0: no answer (connection error)
    seconds: float
    attempts: int = 1


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _deliver(
    session: aiohttp.ClientSession,
    url: str,
    validator: RequestValidator,
    planned: Planned,
    retry_503: int,
) -> Outcome:
    form = {
        "MessageSid": planned.sid,
        "AccountSid": ACCOUNT_SID,
        "From": planned.sender,
        "To": SMS_FROM,
        "Body": planned.body,
        "NumMedia": "0",
    }
    headers = {"X-Twilio-Signature": validator.compute_signature(url, form)}
    attempts = 0
    while True:
        attempts += 1
        started = time.perf_counter()
        try:
            async with session.post(url, data=form, headers=headers) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError):
            status = 0
        seconds = time.perf_counter() - started
        # Like Twilio's fallback URL: a 503 (not stored) is delivered again a little later.
        if status in (0, 503) and attempts <= retry_503:
            await asyncio.sleep(1.0)
            continue
        return Outcome(planned, status, seconds, attempts)


async def _run(url: str, plan: list[Planned], retry_503: int, timeout: float) -> list[Outcome]:
    validator = RequestValidator(AUTH_TOKEN)
    connector = aiohttp.TCPConnector(limit=512)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        start = time.perf_counter()

        async def scheduled(item: Planned) -> Outcome:
            delay = item.at - (time.perf_counter() - start)
            if delay > 0:
                await asyncio.sleep(delay)
            return await _deliver(session, url, validator, item, retry_503)

        return list(await asyncio.gather(*(scheduled(p) for p in plan)))


def send(url: str, plan: list[Planned], retry_503: int = 0, timeout: float = 15.0) -> list[Outcome]:
    """Delivers every planned webhook on schedule (open loop), whatever the answers."""
    return asyncio.run(_run(url, plan, retry_503, timeout))
