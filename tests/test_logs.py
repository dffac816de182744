"""Logging set-up: libraries' per-call chatter stays out of the service's logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot import logs


@pytest.fixture
def configured() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in logs.QUIET_AT_INFO}
    logs.configure("INFO")
    yield
    logging.getLogger().handlers.clear()
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("configured")
def test_twilio_and_huey_per_call_lines_are_not_written_at_info() -> None:
    """Nine lines per Twilio API call and two per task were a tenth of the worker's CPU."""
    for name in ("twilio.http_client", "twilio.async_http_client", "huey", "huey.consumer"):
        logger = logging.getLogger(name)
        assert not logger.isEnabledFor(logging.INFO), name
        assert logger.isEnabledFor(logging.WARNING), name  # their problems still show
    assert logging.getLogger("bot.inbox").isEnabledFor(logging.INFO)  # ours still do
