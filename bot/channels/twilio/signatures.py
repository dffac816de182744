"""Which secret signed a Twilio webhook, and whether its X-Twilio-Signature matches.

By default Twilio signs with the account's Auth Token and HMAC-SHA1. A Webhook Rule of
Twilio's Webhooks configuration API may name a Setting that signs with a SharedKey instead,
with HMAC-SHA1 or HMAC-SHA256; Twilio then adds `X-Twilio-Webhooks-Signature-Settings:
key=<SharedKey id>,algorithm=<algorithm>`. The signed text is the same either way: the URL
Twilio called, then every form field's name and value, sorted (the twilio library's
`compute_signature`). A request with that header is checked against the SharedKey secrets
(TWILIO_WEBHOOK_SHARED_KEYS: two while a key is rotated, each Setting of a split Rule naming
its own), never against the Auth Token; one without it against the Auth Token only.

Twilio signs the URL sometimes with its port and sometimes without; both are tried, the
one without first (one HMAC for nearly every webhook, where the library computes two).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from twilio.request_validator import (
    HMAC_SHA1,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    add_port,
    get_signature_algorithm,
    remove_port,
)

log = logging.getLogger(__name__)

__all__ = ["SIGNATURE_HEADER", "SIGNATURE_SETTINGS_HEADER", "signed"]

_WARN_EVERY = 60.0  # seconds between two warnings of one kind: a flood must not fill the log
_warned: dict[str, float] = {}


def _warn_now(kind: str) -> bool:
    now = time.monotonic()
    if now - _warned.get(kind, -_WARN_EVERY) < _WARN_EVERY:
        return False
    _warned[kind] = now
    return True


def signed(
    url: str,
    params: Any,
    signature: str,
    settings_header: str | None,
    auth_token: str | None,
    shared_keys: Sequence[str],
) -> bool:
    """True when `signature` is what Twilio computes for `url` and `params` with the secret
    and algorithm `settings_header` names (absent or blank: the Auth Token, HMAC-SHA1)."""
    if not signature:
        return False
    if settings_header and settings_header.strip():
        algorithm = get_signature_algorithm(settings_header)
        secrets: Sequence[str] = shared_keys
        if not secrets:
            if _warn_now("no-shared-keys"):
                log.warning(
                    "a Twilio webhook is signed with a SharedKey (%s: %r) but "
                    "TWILIO_WEBHOOK_SHARED_KEYS is not set; refusing it (403)",
                    SIGNATURE_SETTINGS_HEADER,
                    settings_header[:200],
                )
            return False
    else:
        algorithm, secrets = HMAC_SHA1, (auth_token,) if auth_token else ()
    given = signature.encode("utf-8", "surrogatepass")
    parsed = urlparse(url)
    try:
        candidates = (remove_port(parsed), add_port(parsed))
    except ValueError:  # a port that is not a number: Twilio did not call that URL
        return False
    for secret in secrets:
        validator = RequestValidator(secret)
        for candidate in candidates:
            try:
                expected = validator.compute_signature(candidate, params, algorithm)
            except ValueError:  # an algorithm the twilio library does not know
                if _warn_now("algorithm"):
                    log.warning(
                        "a Twilio webhook is signed with an unknown algorithm %r; refusing it "
                        "(403; a newer twilio library may know it)",
                        algorithm[:64],
                    )
                return False
            if hmac.compare_digest(expected.encode("ascii"), given):
                return True
    return False
