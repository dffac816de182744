"""The service's Prometheus metrics, recorded by services and edges alike.

Only prometheus_client here: a service counts what it does without importing the web layer;
`bot.ops` (the Flask blueprint) serves them at /metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import Counter, Histogram

WEBHOOK_SECONDS = Histogram(
    "bot_webhook_seconds",
    "Time to answer a Twilio webhook",
    ["endpoint", "code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
NLU_SECONDS = Histogram(
    "bot_nlu_seconds",
    "Time for the NLU server to understand a message",
    ["outcome"],
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2),
)
INBOUND = Counter("bot_inbound_total", "Inbound messages accepted", ["channel", "duplicate"])
SENT = Counter("bot_outbound_sends_total", "Provider calls by outcome", ["channel", "outcome"])

T = TypeVar("T")


def timed_nlu(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Wraps the NLU call to record its latency and failures."""

    def observed(text_: str) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return parse(text_)
        except Exception:
            outcome = "unavailable"
            raise
        finally:
            NLU_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    return observed
