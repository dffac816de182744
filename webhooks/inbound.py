"""Storing one inbound message, as every provider's webhook does after its own checks."""

from __future__ import annotations

import logging

from flask import abort, current_app
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot import logs
from bot.core.messages import Inbound
from bot.inbox import Accepted
from bot.metrics import INBOUND

log = logging.getLogger(__name__)

# The database could not take the message (down, pool exhausted): answer 503.
STORE_ERRORS = (DBAPIError, PoolTimeout)


def store(inbound: Inbound) -> Accepted | None:
    """Stores `inbound` for the worker and counts it; aborts with 503 when it could not be
    stored (not stored, so not acknowledged: the provider's retry or fallback delivers it).
    None: spooled (the web on the embedded default, bot/spool.py), counted once stored."""
    runtime = current_app.extensions["bot"]
    with logs.context(sid=inbound.provider_id):
        try:
            accepted: Accepted | None = runtime.receive(inbound)
        except STORE_ERRORS:
            log.exception("could not store the inbound message; answering 503")
            abort(503)
        except OSError:
            log.exception("could not spool the inbound message; answering 503")
            abort(503)
        if accepted is None:
            return None
        INBOUND.labels(inbound.channel.value, str(accepted.duplicate).lower()).inc()
        if accepted.duplicate:
            log.info("repeated delivery acknowledged")
        else:
            log.debug(
                "stored as message %s of contact %s", accepted.message_id, accepted.contact_id
            )
    return accepted
