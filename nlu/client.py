"""Client of the Rasa NLU server(s): text in, intent ranking out, failing fast when Rasa is down.

`RASA_URL` may name several servers (comma-separated): requests go round-robin to the ones
that answered last time. A server that times out, refuses or answers 5xx is skipped for a
cool-down; when every server is down the client raises at once instead of making each
message wait for a timeout, and tries again when the cool-down ends, so the service picks
Rasa up again without a restart.

Rasa started with `--auth-token` (RASA_TOKEN; `bot run` makes one per run) refuses any call
without `?token=`: the client sends it on every call, so a reachable Rasa cannot have its
model replaced by whoever finds it.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.util import parse_url

from bot.core.understanding import Candidate, NluUnavailable, Understanding
from bot.core.wording import fold

log = logging.getLogger(__name__)
_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]+")


class _HideToken(logging.Filter):
    """urllib3 logs each request's URL at DEBUG: the Rasa token in it is written as ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = _TOKEN_IN_URL.sub(r"\1***", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_HideToken())


def parse_response(payload: Any) -> Understanding:
    """Reads Rasa's `/model/parse` answer; raises ValueError if it is not one."""
    if not isinstance(payload, dict) or not isinstance(payload.get("intent"), dict):
        raise ValueError("no intent in Rasa's answer")
    intent = payload["intent"]
    ranking = tuple(
        Candidate(str(item["name"]), float(item["confidence"]))
        for item in payload.get("intent_ranking") or []
        if isinstance(item, dict) and "name" in item and "confidence" in item
    )
    name = intent.get("name")
    return Understanding(
        intent=str(name) if name else None,
        confidence=float(intent.get("confidence") or 0.0),
        ranking=ranking,
    )


class RasaClient:
    """Calls `POST /model/parse` through pooled keep-alive connections with a short timeout.

    urllib3's pools directly, not a `requests.Session`: the session's per-call machinery
    (merging settings, hooks, cookies, content sniffing) cost half the client's CPU per
    message (bench/cpu_profile.py), for features a JSON call on a private network never uses.
    """

    def __init__(
        self,
        urls: Sequence[str],
        timeout: float = 1.0,
        cooldown: float = 5.0,
        pool_size: int = 32,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one Rasa URL is needed")
        self.urls = [u.rstrip("/") for u in urls]
        # Rasa's `--auth-token` is checked against the `token` query parameter.
        self.params = {"token": token} if token else {}
        self._query = f"?{urlencode(self.params)}" if self.params else ""
        self.timeout = timeout
        self.cooldown = cooldown
        self.clock = clock
        # One pool per server, its path prefix kept (Rasa may sit behind a proxy's path).
        # No retries, no redirects: a server that does not answer at once is skipped (below).
        # urllib3 reads no proxy settings from the environment: loopback or a private network.
        self._pools = {
            url: (
                urllib3.connection_from_url(url, maxsize=pool_size, block=False, retries=False),
                parse_url(url).path or "",
            )
            for url in self.urls
        }
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._down_until = dict.fromkeys(self.urls, 0.0)
        self._turns = itertools.cycle(range(len(self.urls)))
        self._lock = threading.Lock()

    def _order(self) -> list[str]:
        """Servers to try, starting with the next in turn, skipping those cooling down."""
        now = self.clock()
        with self._lock:
            start = next(self._turns)
        rotated = self.urls[start:] + self.urls[:start]
        return [u for u in rotated if self._down_until[u] <= now]

    def _call(
        self, url: str, method: str, path: str, payload: Any = None
    ) -> urllib3.BaseHTTPResponse:
        pool, prefix = self._pools[url]
        body = None if payload is None else json.dumps(payload).encode()
        return pool.urlopen(
            method,
            f"{prefix}{path}{self._query}",
            body=body,
            headers={"Content-Type": "application/json"} if body is not None else None,
            retries=False,
            redirect=False,
            timeout=self._timeout,
        )

    def healthy(self) -> int:
        """How many servers answer their status page now (readiness checks)."""
        up = 0
        for url in self.urls:
            try:
                up += self._call(url, "GET", "/").status < 500
            except (urllib3.exceptions.HTTPError, OSError):
                continue
        return up

    def parse(self, text: str) -> Understanding:
        """The model's understanding of `text` (sent as `bot.core.wording.fold` spells it).

        Raises:
            NluUnavailable: no server answered in time (or all are cooling down).
        """
        for url in self._order():
            try:
                # Spelled as the training data is.
                response = self._call(url, "POST", "/model/parse", {"text": fold(text)})
                if response.status in (401, 403):
                    log.warning(
                        "Rasa at %s refused the token (HTTP %s): check RASA_TOKEN",
                        url,
                        response.status,
                    )
                if not 200 <= response.status < 300:
                    raise ValueError(f"Rasa answered HTTP {response.status}")
                return parse_response(json.loads(response.data))
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                self._down_until[url] = self.clock() + self.cooldown
        raise NluUnavailable("no Rasa server answered")
