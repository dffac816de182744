"""Twilio's inbound-message and status-callback webhooks (/webhooks/twilio/...).

Register `{PUBLIC_URL}/webhooks/twilio/messages` as the number's (or Messaging Service's)
incoming-message URL; the sender asks for status callbacks at `/webhooks/twilio/status`.
Each view checks `X-Twilio-Signature` against the URL Twilio called (rebuilt from PUBLIC_URL
behind a proxy) and the secret that signed it, the Auth Token or a SharedKey (signatures.py),
maps the form to an `Inbound`, stores it and answers at once with empty TwiML.
A malformed request is a 4xx; a database that cannot store is a 503 (Twilio may retry).
A repeated delivery is stored once: the inbox knows a message by its MessageSid. A status
report is mapped to our status and its ErrorCode to what it means (statuses.py, errors.py)
before the outbox records it.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request

from bot.channels.twilio.errors import NAME, meaning
from bot.channels.twilio.signatures import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER, signed
from bot.channels.twilio.statuses import ours
from bot.core.messages import Channel, Inbound
from bot.phone import InvalidPhone, to_e164
from bot.runtime import Runtime
from webhooks.inbound import STORE_ERRORS, store

log = logging.getLogger(__name__)

bp = Blueprint("twilio_webhooks", __name__, url_prefix="/webhooks/twilio")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_BODY_CHARS = 4096  # Twilio sends at most 1,600; anything far longer is not Twilio.
MAX_MEDIA = 10


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["bot"]
    return runtime


def _twiml() -> Response:
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")


def _signed_url() -> str:
    public = _runtime().settings.public_url
    if not public:
        return request.url
    query = request.query_string.decode("latin-1")
    return f"{public}{request.path}" + (f"?{query}" if query else "")


def _check_signature() -> None:
    request.form  # noqa: B018 - parse first: an oversized body is a 413 before anything else
    settings = _runtime().settings
    if not signed(
        _signed_url(),
        request.form,
        request.headers.get(SIGNATURE_HEADER, ""),
        request.headers.get(SIGNATURE_SETTINGS_HEADER),
        settings.twilio_auth_token,
        settings.twilio_webhook_shared_keys,
    ):
        abort(403)


def _field(name: str, required: bool = False, limit: int = 256) -> str:
    value = request.form.get(name, "")
    if "\x00" in value:
        value = value.replace("\x00", "")
    if required and not value.strip():
        abort(400, description=f"missing {name}")
    if len(value) > limit:
        abort(400, description=f"{name} is too long")
    return value


def parse_inbound(region: str) -> Inbound:
    """Maps Twilio's form fields to an `Inbound`; unknown fields are ignored."""
    sid = _field("MessageSid", required=True, limit=64).strip()
    sender = _field("From", required=True, limit=64).strip()
    channel = Channel.SMS
    if sender.lower().startswith("whatsapp:"):
        channel = Channel.WHATSAPP
        sender = sender.split(":", 1)[1]
    try:
        phone = to_e164(sender, region)
    except InvalidPhone:
        abort(400, description="From is not a phone number")
    body = _field("Body", limit=MAX_BODY_CHARS)
    try:
        num_media = int(request.form.get("NumMedia", "0") or "0")
    except ValueError:
        abort(400, description="NumMedia is not a number")
    if not 0 <= num_media <= MAX_MEDIA:
        abort(400, description="NumMedia is out of range")
    media = tuple(
        url for i in range(num_media) if (url := _field(f"MediaUrl{i}", limit=2048).strip())
    )
    profile = _field("ProfileName", limit=200).strip() or None
    return Inbound(
        channel=channel,
        sender=phone,
        body=body,
        media_urls=media,
        provider_id=sid,
        profile_name=profile,
    )


@bp.post("/messages")
def inbound_message() -> Response:
    """An SMS or WhatsApp message from a person."""
    _check_signature()
    # Not stored is 503, not acknowledged: Twilio's fallback URL or a retry delivers it again.
    store(parse_inbound(_runtime().settings.default_region))
    return _twiml()


@bp.post("/status")
def status_callback() -> Response:
    """A delivery report for a message we sent."""
    _check_signature()
    sid = _field("MessageSid", required=True, limit=64).strip()
    status = _field("MessageStatus", required=True, limit=32).strip()
    raw_code = _field("ErrorCode", limit=16).strip()
    try:
        code = int(raw_code) if raw_code else None
    except ValueError:
        abort(400, description="ErrorCode is not a number")
    try:
        outcome = _runtime().outbox.apply_status(
            sid, ours(status), code, meaning(code), provider=NAME
        )
    except STORE_ERRORS:
        log.exception("could not store status for %s", sid)
        abort(503)
    log.debug("status %s for %s: %s", status, sid, outcome)
    return _twiml()
