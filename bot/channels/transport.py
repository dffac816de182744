"""Whether an HTTP call that failed in transport may have reached the provider.

The adapters' HTTP libraries (requests with urllib3, aiohttp) say at which step a call
failed. A connection that could not be opened (refused, host not found, no route, a connect
timeout, a TLS certificate refused) or a URL that could not be used carried no byte of the
request: the provider cannot have the message, and failover may send it another way. Any
other failure (a read timeout, a connection reset or closed before the answer, a garbled
answer, an error this module does not know) may come after the provider took the message:
`may_have_arrived` answers True, the safe side (bot/failover.py never moves such a message
unless the provider, asked, says it lacks it).
"""

from __future__ import annotations

import ssl

import aiohttp
import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

# Failures that happen before the request is written. urllib3's NewConnectionError covers
# a refused connection and a name that does not resolve, ConnectTimeoutError a connect
# that timed out; aiohttp's ClientConnectorError the same (and the TLS handshake), and its
# ConnectionTimeoutError a connect that used up the call's time.
_BEFORE_SENDING: tuple[type[BaseException], ...] = (
    NewConnectionError,
    ConnectTimeoutError,
    requests.ConnectTimeout,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
    ssl.SSLCertVerificationError,
)


def may_have_arrived(exc: BaseException) -> bool:
    """False when `exc`, raised by requests or aiohttp for one call, shows the request was
    never written (see the module's docstring); True otherwise."""
    return not any(isinstance(seen, _BEFORE_SENDING) for seen in _wrapped(exc))


def _wrapped(exc: BaseException, limit: int = 8) -> list[BaseException]:
    """`exc` and the errors it wraps: requests keeps urllib3's error in `args[0]`, urllib3
    the socket's in `reason` or `original_error`, and either may chain it as the cause.
    (Not `__context__`: an error met while handling another is not what failed.)"""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < limit:
        seen = todo.pop(0)
        if any(seen is f for f in found):
            continue
        found.append(seen)
        inner = [
            getattr(seen, "reason", None),
            getattr(seen, "original_error", None),
            seen.__cause__,
            *seen.args,
        ]
        todo += [e for e in inner if isinstance(e, BaseException)]
    return found


def aiohttp_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """A call's timeout for aiohttp, its connect step timed on its own (half the call's
    time, 3 s at most). aiohttp reports the end of the total time the same way whether the
    connection was still being opened or the answer was awaited; a connect that times out
    on its own is ConnectionTimeoutError: certainly not sent."""
    return aiohttp.ClientTimeout(total=seconds, sock_connect=min(3.0, seconds / 2))
