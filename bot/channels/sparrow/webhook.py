"""The inbound URL Sparrow SMS calls for the short code's keyword (issue 11).

Sparrow's documentation (docs.sparrowsms.com, "Receive SMS", sparrowsms/apidocs
docs/incoming.md): for each SMS to the short code that starts with the account's keyword,
Sparrow sends a GET to the registered URL with `from` (the subscriber's number), `to` (the
short code), `text` (the complete SMS) and `keyword`. The response body, at most 160
characters with status 200 or 202, is sent to the person as the reply; on any other status
Sparrow sends the campaign's "default reply" instead.

What we do with it:
- Register `{PUBLIC_URL}/webhooks/sparrow/<SPARROW_INBOUND_TOKEN>/inbound` with Sparrow.
  Sparrow signs nothing, so the secret path token (compared with hmac.compare_digest) and,
  if SPARROW_ALLOWED_IPS is set, the caller's address (after TRUSTED_PROXIES' ProxyFix) are
  the authentication. Anything else: 403, nothing stored. GET as documented; POST accepted
  too (same parameters, form-encoded).
- We answer 200 with an empty body at once and reply later through the send API (the
  answer may be longer than 160 characters, and it is worked out by the worker). What
  Sparrow does with an empty 200 is not documented; we assume it sends nothing. Configure
  the default reply in Sparrow's panel as a "please try again" text: it goes out when we
  answer 503 (database unavailable) or 4xx.
- Sparrow sends no message id and no timestamp. A delivery is identified by a hash of
  (from, to, text, keyword) and the 10-second window it arrived in: a repeated delivery
  within the window is stored once; the same text sent twice by a person within those
  seconds is stored once too (the price of having no id). If a request carries an `id`,
  `message_id` or `sms_id` parameter (not documented), it is used instead.
- Malformed requests are 400, never 500.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from ipaddress import ip_address

from flask import Blueprint, Response, abort, current_app, request

from bot.channels.sparrow.api import ROUTE
from bot.channels.sparrow.settings import SparrowSettings
from bot.core.messages import Channel, Inbound
from bot.phone import InvalidPhone, to_e164
from bot.runtime import Runtime
from webhooks.inbound import store

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4096  # an SMS concatenated from many parts is far shorter
DEDUP_WINDOW_SECONDS = 10
ID_PARAMS = ("id", "message_id", "sms_id")  # not documented: used if Sparrow ever sends one
clock = time.time  # tests replace it to pin the duplicate window

bp = Blueprint("sparrow_webhooks", __name__, url_prefix="/webhooks/sparrow")


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["bot"]
    return runtime


def _authenticate(token: str) -> None:
    settings = _runtime().settings.provider(ROUTE, SparrowSettings)
    expected = settings.inbound_token if settings else None
    if not settings or not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        abort(403)
    if settings.allowed_ips:
        try:
            caller = ip_address(request.remote_addr or "")
        except ValueError:
            abort(403)
        if not any(caller in network for network in settings.allowed_ips):
            abort(403)


def _param(name: str, required: bool = False, limit: int = 64) -> str:
    value = request.values.get(name, "").replace("\x00", "")
    if required and not value.strip():
        abort(400, description=f"missing {name}")
    if len(value) > limit:
        abort(400, description=f"{name} is too long")
    return value


def _phone(raw: str, region: str) -> str:
    digits = raw.strip().lstrip("+")
    if not digits.isdigit():
        abort(400, description="from is not a phone number")
    if len(digits) == 13 and digits.startswith("977"):
        digits = "+" + digits  # 977 and the 10-digit number
    try:
        return to_e164(digits, region)
    except InvalidPhone:
        abort(400, description="from is not a phone number")


def delivery_id(sender: str, short_code: str, text: str, keyword: str, now: float) -> str:
    """The stable id of a delivery that came without one (see the module's docstring)."""
    window = int(now // DEDUP_WINDOW_SECONDS)
    raw = "\x1f".join((sender, short_code, text, keyword, str(window)))
    return f"{ROUTE}:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:48]


def parse_inbound(region: str) -> Inbound:
    """Maps Sparrow's parameters to an `Inbound` (channel SMS, route "sparrow")."""
    sender = _phone(_param("from", required=True), region)
    short_code = _param("to").strip()
    text = _param("text", limit=MAX_TEXT_CHARS)
    keyword = _param("keyword", limit=160).strip()
    given = next((v for name in ID_PARAMS if (v := _param(name).strip())), None)
    provider_id = f"{ROUTE}:{given}" if given else None
    return Inbound(
        channel=Channel.SMS,
        sender=sender,
        body=text,
        provider_id=provider_id or delivery_id(sender, short_code, text, keyword, clock()),
        route=ROUTE,
    )


@bp.route("/<token>/inbound", methods=["GET", "POST"])
def inbound_message(token: str) -> Response:
    """An SMS a person sent to the short code."""
    _authenticate(token)
    store(parse_inbound(_runtime().settings.default_region))
    # Empty: the replies go out through the send API (see the module's docstring).
    return Response("", status=200, mimetype="text/plain")
