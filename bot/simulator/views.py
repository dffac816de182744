"""The web simulator: chat with the bot through the same pipeline, without Twilio.

Simulated contacts are kept apart from real ones (a STOP here never opts out a real
number) and their replies go through the console channel only.
"""

from __future__ import annotations

import hmac
import secrets
import uuid

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    session,
)
from sqlalchemy import select

from bot.core.messages import Channel, Inbound
from bot.db.models import Contact, Message
from bot.phone import InvalidPhone, to_e164
from bot.runtime import Runtime

bp = Blueprint(
    "simulator",
    __name__,
    url_prefix="/simulator",
    template_folder="templates",
    static_folder="static",
)

MAX_CHARS = 1600


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["bot"]
    return runtime


def _token() -> str:
    if "sim_token" not in session:
        session["sim_token"] = secrets.token_urlsafe(32)
    return str(session["sim_token"])


def _check_token() -> None:
    sent = request.headers.get("X-CSRF-Token", "")
    expected = session.get("sim_token", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(403)


def _phone(raw: str | None) -> str:
    try:
        return to_e164(raw or "", _runtime().settings.default_region)
    except InvalidPhone:
        abort(400, description="enter a phone number, e.g. 9812345678")


@bp.get("/")
def page() -> str:
    """The chat page."""
    return render_template("simulator.html", csrf_token=_token())


@bp.post("/messages")
def send() -> Response:
    """Sends one message from the simulated phone."""
    _check_token()
    data = request.get_json(silent=True) or {}
    phone = _phone(data.get("phone"))
    body = str(data.get("body", ""))[:MAX_CHARS].replace("\x00", "")
    inbound = Inbound(
        channel=Channel.SIMULATOR, sender=phone, body=body, provider_id=f"SIM{uuid.uuid4().hex}"
    )
    accepted = _runtime().accept(inbound, simulated=True)
    return jsonify(id=accepted.message_id)


@bp.get("/messages")
def thread() -> Response:
    """The simulated phone's messages after `after` (the page polls this)."""
    phone = _phone(request.args.get("phone"))
    try:
        after = int(request.args.get("after", "0"))
    except ValueError:
        abort(400)
    with _runtime().db.read() as db:
        contact_id = db.scalar(
            select(Contact.id).where(Contact.phone == phone, Contact.simulated.is_(True))
        )
        rows = []
        if contact_id is not None:
            newest_first = db.scalars(
                select(Message)
                .where(Message.contact_id == contact_id, Message.id > after)
                .order_by(Message.id.desc())
                .limit(200)
            )
            rows = list(reversed(newest_first.all()))
    return jsonify(
        messages=[
            {
                "id": m.id,
                "direction": m.direction,
                "body": m.body,
                "status": m.status,
                "at": m.created_at.isoformat(),
            }
            for m in rows
        ]
    )
