"""Paces sends per sender in segments (or WhatsApp messages) per second, across processes.

The `limits` library keeps the moving window, where every worker process draws from the
same budget: in Redis when REDIS_URL is set, else in a file the machine's processes share
(bot/db/pace_store.py; in memory when given no directory).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.strategies import MovingWindowRateLimiter

from bot.db.pace_store import pace_storage

# The biggest message the window must fit: 10 segments (1,530 GSM-7 characters).
MAX_COST = 10


class Pacer:
    """Blocks until a sender may send `cost` more units."""

    def __init__(
        self,
        redis_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        namespace: str = "bot-pace",
        var_dir: Path | None = None,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(pace_storage(redis_url, var_dir))
        self._sleep = sleep
        self._namespace = namespace
        self._items: dict[float, RateLimitItem] = {}

    def _item(self, rate: float) -> RateLimitItem:
        # A window long enough for the largest message at this rate, at least a second.
        if rate not in self._items:
            window = max(1, math.ceil(MAX_COST / rate))
            self._items[rate] = RateLimitItemPerSecond(max(1, round(rate * window)), window)
        return self._items[rate]

    def acquire(self, sender: str, rate: float, cost: int, deadline: float | None = None) -> bool:
        """Waits until `cost` units may go from `sender` at `rate` per second.

        Returns False if `deadline` (a time.monotonic() value) passes first. A rate of 0
        means unpaced.
        """
        if rate <= 0:
            return True
        item = self._item(rate)
        cost = max(1, min(cost, item.amount))
        while True:
            if self._limiter.hit(item, self._namespace, sender, cost=cost):
                return True
            stats = self._limiter.get_window_stats(item, self._namespace, sender)
            wait = min(max(stats.reset_time - time.time(), 0.005), 0.25)
            if deadline is not None and time.monotonic() + wait > deadline:
                return False
            self._sleep(wait)
