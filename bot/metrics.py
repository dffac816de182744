"""The service's Prometheus metrics, recorded by services and edges alike.

Only prometheus_client here: a service counts what it does without importing the web layer;
`bot.ops` (the Flask blueprint) serves them at /metrics.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
# Failover (issue 11, bot/failover.py): messages moved off a route that is down, and routes
# going down or coming back up. Whether each route is up now is `bot_route_up`, read from the
# shared table when scraped (bot.failover.RouteCollector).
FAILOVERS = Counter(
    "bot_channel_failovers_total",
    "Messages sent by the next route in CHANNEL_ORDER because theirs was down",
    ["from", "to"],
)
ROUTE_CHANGES = Counter(
    "bot_route_state_changes_total", "Routes going down or coming back up", ["route", "state"]
)

# `bot run`'s supervisor writes the state of every process it runs here (under VAR_DIR):
# /readyz says which one is down, /metrics exports `bot_process_restarts_total{process}`. The
# supervisor owns the count (it outlives every child it restarts), so a file, not a counter
# in the supervisor's memory that the web process could not read.
PROCESSES_FILE = "processes.json"

T = TypeVar("T")


def write_process_states(path: Path, states: dict[str, dict[str, Any]]) -> None:
    """Replaces the status file atomically: a reader never sees half of it."""
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"supervisor": os.getpid(), "processes": states}))
    os.replace(partial, path)


def read_process_states(var_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The supervised processes' states (name → state, restarts, last exit), or None when no
    live `bot run` supervises this installation (no file, or its supervisor is gone)."""
    try:
        status = json.loads((var_dir / PROCESSES_FILE).read_text())
        os.kill(int(status["supervisor"]), 0)  # a supervisor killed outright left its file
    except (OSError, ValueError, KeyError, TypeError):
        return None
    processes: dict[str, dict[str, Any]] = status.get("processes") or {}
    return processes


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
