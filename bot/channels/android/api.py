"""What the Android SMS gateway documents about its API and webhooks, and what it means for us.

Sources, read for issue 11:
- The app's source, github.com/capcom6/android-sms-gateway (commit 0cdc5d8, 2026-07-14):
  modules/localserver/WebService.kt and routes/MessagesRoutes.kt (the local server's API),
  localserver/domain/messages/PostMessageRequest.kt and Message.kt (the JSON shapes),
  domain/ProcessingState.kt (the states), modules/webhooks/domain/WebHookEvent.kt,
  WebHookEventDTO.kt, payload/SmsEventPayload.kt (the webhook events) and
  modules/webhooks/plugins/PayloadSingingPlugin.kt (the signature).
- The documentation site docs.sms-gate.app (github.com/android-sms-gateway/docs-web):
  docs/features/sending-messages.md, status-tracking.md, webhooks.md, docs/faq/general.md,
  docs/faq/errors.md.

What they say:
- Local mode: the app serves HTTP on the phone (default port 8080) with basic auth (the user
  and password the app shows). `POST /message` (or `/messages`) with JSON
  `{"id"?, "textMessage": {"text"}, "phoneNumbers": [E.164...], "withDeliveryReport"?,
  "simNumber"?, "ttl"?, "priority"?}` answers 202 with the message
  `{"id", "deviceId", "state", "recipients": [{"phoneNumber", "state", "error"}], "states"}`;
  an `id` we choose is kept (409 Conflict "Message with the same ID already exists" when it
  is taken). `GET /message/{id}` answers the same shape, or 404 if the phone never took it.
  Errors are `{"message": text}`: 400 for a bad request (IllegalArgumentException: an empty
  text, no numbers, a SIM number below 1, an expired ttl), 401 for wrong credentials, 500
  for the phone's own failures. A number libphonenumber refuses is found only when the phone
  sends (MessagesService.kt, PhoneHelper.kt): the message is taken (202), then fails
  (`sms:failed`, reason "sendSMS: Invalid phone number"). `GET /health` needs no
  credentials.
- Cloud mode: the same calls under `https://api.sms-gate.app/3rdparty/v1` (`/messages`,
  `/messages/{id}`, `/webhooks`, `/devices`) with the account's basic auth; `deviceId` in
  the body picks the phone. The server queues and pushes; the phone fetches.
- States (ProcessingState): Pending (queued on the phone), Processed (handed to Android's SMS
  API), Sent (the SMSC took it), Delivered (delivery report), Failed (terminal), and
  Cancelling/Cancelled. Per recipient the same states with an `error` text.
- Webhooks: registered per event (`POST /webhooks` with `{"url", "event"}`, local mode on the
  phone itself). Each is a POST of JSON `{"id", "webhookId", "event", "deviceId", "payload"}`.
  Events: `sms:received` (payload `messageId`, `message`, `phoneNumber` and, in newer
  versions, `sender`/`recipient`, `simNumber`, `receivedAt`), `sms:sent` (`messageId`,
  `phoneNumber`/`recipient`, `partsCount`, `sentAt`), `sms:delivered` (`deliveredAt`),
  `sms:failed` (`failedAt`, `reason`), `system:ping` (`health`), and others we ignore
  (`sms:data-received`, `mms:*`, `app:started`, `sms:cancelled`). The received `messageId`
  "is generated based on the message content and is not guaranteed to be unique": we
  recognise a repeated delivery by the event's own `id`. The app retries a delivery not
  answered 2xx within 30 s (10 s, then doubling, 14 times by default).
- Signature: `X-Signature` = hex HMAC-SHA256(signing key, raw body + X-Timestamp), with
  `X-Timestamp` the Unix time in seconds. The key is per phone (8 random characters at
  first use, changeable in Settings > Webhooks > Signing Key). The docs advise accepting
  only timestamps within ±5 minutes (`TIMESTAMP_TOLERANCE_SECONDS`).
- Pace: the app documents no rate; it offers "Limits" and "Delay between messages" settings
  and warns of RESULT_ERROR_LIMIT_EXCEEDED from the carrier or Android. Android itself
  (AOSP SmsUsageMonitor: DEFAULT_SMS_MAX_COUNT = 30 in DEFAULT_SMS_CHECK_PERIOD = 60 s)
  asks the phone's owner to confirm beyond 30 segments a minute, and nobody is watching a
  gateway phone: sending stops. We default to 6 segments a minute per phone (a fifth of
  that, a pace at which a person could type) so that a SIM is not flagged for bulk sending
  by its carrier (Nepal Telecom, Ncell publish no figure); ANDROID_GATEWAY_PACE changes it.

What each answer means for us (`classify`): 202 accepted; 400 saying "invalid phone" (the
cloud server's check, our fake's) -> permanent for that message (BAD_NUMBER); other 4xx
permanent; 401/403
-> our configuration is wrong (the phone's credentials): transient for the message (it goes
to another phone) and counted against the phone; 429, 5xx, timeouts, refused connections ->
transient and counted against the phone. Whether the phone may have taken the message all
the same (`maybe_sent`): no for its own error answers, 429, 503 and a connection never
opened; maybe for a 2xx without the message, another 5xx without the app's error body, a
reply that timed out or a connection dropped after the request went out (`answer_in_doubt`,
bot/channels/transport.py). The sender asks the phone about those before anything else.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from bot.channels.base import ErrorMeaning, PermanentSendError, SendError, TransientSendError
from bot.core.status import MessageStatus

ROUTE = "android"  # the name messages and contacts record (messages.provider)
LOCAL_SEND_PATH = "/message"
LOCAL_HEALTH_PATH = "/health"
CLOUD_SEND_PATH = "/messages"
CLOUD_DEVICES_PATH = "/devices"
TIMESTAMP_TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
ID_PREFIX = "cb"  # the ids we give messages: "cb" + 32 hex digits (the app takes any string)

# The app's states (ProcessingState), lower case, and ours.
STATES: dict[str, MessageStatus] = {
    "pending": MessageStatus.QUEUED,
    "processed": MessageStatus.SENDING,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "failed": MessageStatus.FAILED,
    "cancelling": MessageStatus.FAILED,
    "cancelled": MessageStatus.FAILED,
}
# Webhook events about messages we sent, and the status each reports.
STATUS_EVENTS: dict[str, MessageStatus] = {
    "sms:sent": MessageStatus.SENT,
    "sms:delivered": MessageStatus.DELIVERED,
    "sms:failed": MessageStatus.FAILED,
    "sms:cancelled": MessageStatus.FAILED,
}
RECEIVED_EVENT = "sms:received"
PING_EVENT = "system:ping"

# HTTP statuses (the app has no error codes): what each means for the message.
BAD_REQUEST = 400
CONFIG_ERRORS = {401, 403}
NUMBER_WORDS = ("invalid phone",)


def sign(key: str, body: bytes, timestamp: str) -> str:
    """The app's signature of a webhook body (PayloadSingingPlugin.kt)."""
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def signature_ok(key: str, body: bytes, timestamp: str, signature: str) -> bool:
    """Constant-time check of `signature` against `sign(key, body, timestamp)`."""
    return hmac.compare_digest(sign(key, body, timestamp), signature.strip().lower())


def message_body(gateway_id: str, to: str, text: str, device_id: str | None) -> dict[str, Any]:
    """The JSON of a send (PostMessageRequest.kt): one recipient, delivery report on."""
    body: dict[str, Any] = {
        "id": gateway_id,
        "textMessage": {"text": text},
        "phoneNumbers": [to],
        "withDeliveryReport": True,
    }
    if device_id is not None:
        body["deviceId"] = device_id
    return body


def classify(http_status: int, payload: Any) -> SendError | None:
    """None when the phone (or the cloud) took the message, else the error it means."""
    if http_status in (200, 201, 202) and isinstance(payload, dict) and payload.get("id"):
        return None
    text = str(payload.get("message", "")) if isinstance(payload, dict) else ""
    detail = f"Android gateway HTTP {http_status}: {text[:200]}"
    if http_status in CONFIG_ERRORS:
        return TransientSendError(
            detail + " (check the phone's user and password)",
            http_status,
            provider=ROUTE,
            maybe_sent=False,
        )
    maybe = answer_in_doubt(http_status, payload)
    if http_status == 429 or http_status >= 500 or 200 <= http_status < 300:
        return TransientSendError(detail, http_status, provider=ROUTE, maybe_sent=maybe)
    if http_status == BAD_REQUEST and any(word in text.lower() for word in NUMBER_WORDS):
        return PermanentSendError(
            detail, http_status, ErrorMeaning.BAD_NUMBER, ROUTE, maybe_sent=False
        )
    return PermanentSendError(detail, http_status, provider=ROUTE, maybe_sent=False)


def answer_in_doubt(http_status: int, payload: Any) -> bool:
    """Whether an answer that is not a success may still mean the phone took the message: a
    2xx without the message (the id was ours: the phone can be asked), or a 5xx other than
    503 without the app's `{"message"}` error body (something between us and the phone
    answered, after the phone may have taken it). The app's own error, 429, 503 and other
    4xx mean it did not."""
    if 200 <= http_status < 300:
        return True
    own_error = isinstance(payload, dict) and "message" in payload
    return http_status >= 500 and http_status != 503 and not own_error


def state_of(payload: Any) -> MessageStatus | None:
    """Our status for a message the API returned (`GET /message/{id}`), None if unknown."""
    if not isinstance(payload, dict):
        return None
    return STATES.get(str(payload.get("state", "")).strip().lower())


def counts_against_phone(error: SendError) -> bool:
    """A failure the phone (or its link) caused, not the message: transient ones."""
    return isinstance(error, TransientSendError)
