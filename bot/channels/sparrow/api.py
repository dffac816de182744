"""What Sparrow SMS documents about its HTTP API, and what each answer means for us.

Source: Sparrow SMS's own API documentation, docs.sparrowsms.com (the `sparrowsms/apidocs`
repository on GitHub: docs/outgoing_sendsms.md, docs/outgoing_credits.md, docs/incoming.md,
docs/examples_incoming.md), read for issue 11.

- Send: `GET` or `POST {base}/v2/sms/` with `token` (generated on Sparrow's website),
  `from` (the sender identity Sparrow gave the account), `to` (comma-separated 10-digit
  mobile numbers) and `text`. Success is HTTP 200 with
  `{"count": n, "response_code": 200, "response": "n mesages has been queued for delivery"}`.
  No message id is returned, and nothing lists sent messages.
- Errors are HTTP 403 with `{"response_code": <code>, "response": <text>}`: 1000 a required
  field is missing, 1001 invalid IP address, 1002 invalid token, 1003/1004 account inactive,
  1005/1006 account expired, 1007 invalid receiver, 1008 invalid sender, 1010 text cannot be
  empty, 1011 no valid receiver, 1012 no credits available, 1013 insufficient credits.
- Credits: `GET {base}/v2/credit/?token=` answers 200 with `credits_available`,
  `credits_consumed`, `response_code: 200`; errors as above (1001-1006, 1012).

Not documented, and the choice made here: rate limits and 429 (treated like 5xx:
transient), any other HTTP status (5xx transient, other 4xx permanent), delivery reports
for SMS (none: a send's last status is "sent"), whether `to` accepts +977 (we send the
10-digit national number, as documented).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.channels.base import ErrorMeaning, PermanentSendError, SendError, TransientSendError

ROUTE = "sparrow"  # the name messages and contacts record (messages.provider)
SEND_PATH = "/v2/sms/"
CREDIT_PATH = "/v2/credit/"
SUCCESS = 200

# What each documented error code means for the message. Account-wide problems (credits,
# token, IP, an expired account) are transient: the message is fine, and retries with
# backoff give an operator time to top up or fix the account before the message fails.
# Problems with this message (the number, the text, a missing field) are permanent.
ERRORS: dict[int, tuple[str, bool]] = {
    1000: ("a required field is missing", False),
    1001: ("invalid IP address (not on the account's allowed list)", True),
    1002: ("invalid token (SPARROW_TOKEN)", True),
    1003: ("account inactive", True),
    1004: ("account inactive", True),
    1005: ("account has expired", True),
    1006: ("account has expired", True),
    1007: ("invalid receiver (not a Nepali mobile number)", False),
    1008: ("invalid sender (SPARROW_FROM)", False),
    1010: ("text cannot be empty", False),
    1011: ("no valid receiver", False),
    1012: ("no credits available", True),
    1013: ("insufficient credits", True),
}
# The number cannot receive SMS from us: like a bad number, never worth retrying.
BAD_NUMBER = {1007, 1011}


def meaning(code: int | None) -> ErrorMeaning | None:
    """What Sparrow's error `code` means for the contact; None for a code not in ERRORS."""
    if code in BAD_NUMBER:
        return ErrorMeaning.BAD_NUMBER
    if code is None or code not in ERRORS:
        return None
    return ErrorMeaning.RETRY if ERRORS[code][1] else ErrorMeaning.FAILED


def classify(http_status: int, payload: Any) -> SendError | None:
    """None when Sparrow accepted the request, else the error it means for us."""
    code = payload.get("response_code") if isinstance(payload, dict) else None
    if http_status == 200 and code in (SUCCESS, str(SUCCESS)):
        return None
    text = str(payload.get("response", "")) if isinstance(payload, dict) else ""
    try:
        number = int(code) if code is not None else None
    except (TypeError, ValueError):
        number = None
    if number is not None and number in ERRORS:
        what, transient = ERRORS[number]
        kind = TransientSendError if transient else PermanentSendError
        return kind(f"Sparrow {number}: {what}", number, meaning(number), ROUTE, maybe_sent=False)
    detail = f"Sparrow HTTP {http_status}: {text[:200]}"
    maybe = answer_in_doubt(http_status, payload)
    if http_status == 429 or http_status >= 500:
        return TransientSendError(detail, number, None, ROUTE, maybe_sent=maybe)
    return PermanentSendError(detail, number, None, ROUTE, maybe_sent=maybe)


def answer_in_doubt(http_status: int, payload: Any) -> bool:
    """Whether an answer that is neither a success nor a documented error may still mean
    Sparrow queued the message: a 2xx it did not explain, or a 5xx other than 503 without
    Sparrow's own error body (a proxy's 500/502/504 may come after Sparrow took it). An
    answer in Sparrow's error format, any other 4xx, 429 and 503 (by HTTP's definition
    the request was not handled) mean it did not."""
    if 200 <= http_status < 300:
        return True
    own_error = isinstance(payload, dict) and ("response_code" in payload or "response" in payload)
    return http_status >= 500 and http_status != 503 and not own_error


def national_number(e164: str) -> str:
    """The 10-digit number Sparrow expects for a Nepali E.164 number (+9779812345678).

    Raises:
        PermanentSendError: the number is not Nepali; Sparrow only reaches Nepal.
    """
    if e164.startswith("+977") and len(e164) == 14 and e164[4:].isdigit():
        return e164[4:]
    raise PermanentSendError(
        "Sparrow reaches only Nepali mobile numbers (+977 and 10 digits)",
        meaning=ErrorMeaning.BAD_NUMBER,
        provider=ROUTE,
    )


@dataclass(frozen=True)
class Credits:
    """The account's credits, as Sparrow reports them."""

    available: float
    consumed: float


def parse_credits(http_status: int, payload: Any) -> Credits:
    """Credits from the credit endpoint's answer; raises SendError as `classify` says."""
    if http_status == 200 and isinstance(payload, dict) and "credits_available" in payload:
        return Credits(
            float(payload.get("credits_available") or 0),
            float(payload.get("credits_consumed") or 0),
        )
    error = classify(http_status, payload)
    raise error or TransientSendError("Sparrow answered the credit request without credits")
