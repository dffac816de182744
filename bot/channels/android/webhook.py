"""The URL the Android SMS gateway app posts its webhooks to (issue 11; api.py has the docs).

Register `{PUBLIC_URL}/webhooks/android/events` on each phone for the events `sms:received`,
`sms:sent`, `sms:delivered` and `sms:failed` (README: "Local SMS through Android phones").

- Authentication: the app signs each request, `X-Signature` = hex HMAC-SHA256(signing key,
  raw body + `X-Timestamp`). The signature must match a configured key (a phone's own from
  ANDROID_GATEWAY_PHONES, or the shared ANDROID_GATEWAY_SIGNING_KEY), and the timestamp be
  within ±5 minutes of our clock (as the docs advise). Anything else, or no gateway
  configured: 403, nothing stored.
- Malformed (not JSON, missing fields, a sender that is not a phone number): 400, never 500.
- `sms:received`: stored through webhooks/inbound.store (route "android": the replies go
  back through the pool). The docs say the payload's `messageId` is derived from the content
  and not unique, and the event `id` differs between two webhooks registered for the same
  event (a phone with both local and cloud registrations); a delivery is therefore known by
  a hash of the device, `messageId`, sender, `receivedAt` and text, stored once.
- `sms:sent` / `sms:delivered` / `sms:failed` (and `sms:cancelled`): the status of the
  message we recorded as `android:<messageId>` (statuses only move forward; repeats change
  nothing).
- Other events (`system:ping`, MMS, `app:started`...): 200 and ignored, so that the app does
  not retry them for two days.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, abort, current_app, request

from bot.channels.android.api import (
    RECEIVED_EVENT,
    ROUTE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TIMESTAMP_TOLERANCE_SECONDS,
    signature_ok,
)
from bot.channels.android.settings import AndroidGateway
from bot.channels.android.statuses import status_of
from bot.core.messages import Channel, Inbound
from bot.phone import InvalidPhone, to_e164
from bot.runtime import Runtime
from webhooks.inbound import STORE_ERRORS, store

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4096
MAX_ID_CHARS = 56  # "android:" + this fits provider_sid (64)
clock = time.time  # tests replace it to test the timestamp window

bp = Blueprint("android_webhooks", __name__, url_prefix="/webhooks/android")


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["bot"]
    return runtime


def _authenticate(body: bytes) -> str | None:
    """The phone whose key signed `body` (None: the shared key); aborts 403 otherwise."""
    gateway = _runtime().settings.provider(ROUTE, AndroidGateway)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    stamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if gateway is None or not signature or not stamp.isdigit() or len(stamp) > 12:
        abort(403)
    if abs(clock() - int(stamp)) > TIMESTAMP_TOLERANCE_SECONDS:
        abort(403)
    for phone, key in gateway.signing_keys():
        if signature_ok(key, body, stamp, signature):
            return phone
    abort(403)


def _text(payload: dict[str, Any], name: str, limit: int, required: bool = True) -> str:
    value = payload.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        abort(400, description=f"{name} is missing or not text")
    if len(value) > limit:
        abort(400, description=f"{name} is too long")
    return value.replace("\x00", "")


def _event(body: bytes) -> tuple[str, str, dict[str, Any]]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        abort(400, description="the body is not JSON")
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        abort(400, description="expected an object with event, id and payload")
    event = _text(data, "event", 64).strip().lower()
    device = _text(data, "deviceId", MAX_ID_CHARS, required=False)
    return event, device, data["payload"]


def parse_inbound(device: str, payload: dict[str, Any], region: str) -> Inbound:
    """Maps an `sms:received` payload to an `Inbound` (channel SMS, route "android")."""
    text = _text(payload, "message", MAX_TEXT_CHARS, required=False)
    raw_sender = payload.get("sender") or payload.get("phoneNumber")
    if not isinstance(raw_sender, str) or not raw_sender.strip() or len(raw_sender) > 32:
        abort(400, description="sender is not a phone number")
    try:
        sender = to_e164(raw_sender.strip(), region)
    except InvalidPhone:
        abort(400, description="sender is not a phone number")
    message_id = _text(payload, "messageId", MAX_ID_CHARS)
    received_at = _text(payload, "receivedAt", MAX_ID_CHARS, required=False)
    raw = "\x1f".join((device, message_id, sender, received_at, text))
    delivery = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:48]
    return Inbound(
        channel=Channel.SMS,
        sender=sender,
        body=text,
        provider_id=f"{ROUTE}:{delivery}",
        route=ROUTE,
    )


@bp.post("/events")
def events() -> Response:
    """One webhook from a phone of the pool."""
    body = request.get_data(cache=True)
    _authenticate(body)
    event, device, payload = _event(body)
    runtime = _runtime()
    if event == RECEIVED_EVENT:
        store(parse_inbound(device, payload, runtime.settings.default_region))
        return Response("", status=200)
    status = status_of(event)
    if status is None:
        return Response("", status=200)  # an event we do not use
    sid = f"{ROUTE}:{_text(payload, 'messageId', MAX_ID_CHARS).strip()}"
    try:
        outcome = runtime.outbox.apply_status(sid, status, None)
    except STORE_ERRORS:
        log.exception("could not store the status of %s", sid)
        abort(503)
    log.debug("%s for %s: %s", event, sid, outcome)
    return Response("", status=200)
