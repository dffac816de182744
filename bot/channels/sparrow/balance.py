"""The Sparrow account's credit balance, for /readyz and the dashboard's settings page.

Asked at most once a minute (`GET /v2/credit/`, api.py): a readiness probe every few seconds
must not become traffic to Sparrow, and a page view must not wait on it twice. The answer is
informative only: /readyz never reports "not ready" because of it (inbound SMS is still
accepted and stored while Sparrow is down or out of credit; sends are retried).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bot.channels.base import SendError
from bot.channels.sparrow.api import Credits

MAX_AGE_SECONDS = 60.0


class Balance:
    """A cached, one-line summary of the account's credits."""

    def __init__(
        self,
        fetch: Callable[[], Credits],
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, str] | None = None

    def summary(self) -> str:
        """ "ok (N credits available)", "low" when none is left, or what went wrong."""
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self._max_age:
                return self._cached[1]
            try:
                credits = self._fetch()
            except SendError as exc:
                text = f"unavailable: {exc}"
            else:
                amount = f"{credits.available:g} credits available"
                text = f"ok ({amount})" if credits.available > 0 else f"empty ({amount})"
            self._cached = (now, text)
            return text
