"""Logging for every process: plain text by default, one JSON object per line with
LOG_FORMAT=json (the default with BOT_ENV=production), carrying the ids of what is being
worked on (request, message, contact, broadcast run) so one message can be followed from
the webhook through the worker to the provider.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_CONTEXT: contextvars.ContextVar[tuple[tuple[str, Any], ...]] = contextvars.ContextVar(
    "log_context", default=()
)
ROLE = {"name": "bot"}


@contextmanager
def context(**ids: Any) -> Iterator[None]:
    """Adds ids to every log line written inside the block (this thread or task only)."""
    merged = dict(_CONTEXT.get()) | {k: v for k, v in ids.items() if v is not None}
    token = _CONTEXT.set(tuple(merged.items()))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context = dict(_CONTEXT.get())
        record.role = ROLE["name"]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, process role, logger, message, ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "role": getattr(record, "role", ROLE["name"]),
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "context", {}) or {})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = getattr(record, "context", {}) or {}
        return f"{line} [{' '.join(f'{k}={v}' for k, v in ids.items())}]" if ids else line


def configure(level: str = "INFO", fmt: str | None = None, role: str | None = None) -> None:
    """Sets up the root logger once per process."""
    if role:
        ROLE["name"] = role
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "").lower()
    if not fmt:
        fmt = "json" if os.environ.get("BOT_ENV") == "production" else "text"
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s %(role)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in QUIET_AT_INFO:
        logging.getLogger(name).setLevel(logging.WARNING)


# Chatty at INFO and of no use in operation. Twilio's HTTP clients write nine lines per API
# call (request line, query, each header, response status and headers) and Huey two per task
# ("Executing…", "…executed in"): at INFO, `bot run`'s default, formatting them was a tenth
# of the worker's CPU per FAQ message (bench/cpu_profile.py), and the worker's own
# "handled: …" line already says what each task did. Their warnings and errors still show.
QUIET_AT_INFO = (
    "alembic.runtime.plugins",
    "apscheduler.scheduler",
    "apscheduler.executors",
    "twilio.http_client",
    "twilio.async_http_client",
    "huey",
)
