"""The web simulator: chat with the bot through the same pipeline, without Twilio.

Simulated contacts are kept apart from real ones (a STOP here never opts out a real
number) and their replies go through the console channel only. Each browser session chats
from a number of its own, drawn at random (never typed in: a typed number would let anyone
signed in speak as a registered mobilizer's phone), and only that session sees its thread.
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


def _new_phone() -> str:
    """A fresh simulated number (+97798 and 8 random digits) no simulated contact has yet."""
    with _runtime().db.read() as db:
        while True:
            phone = f"+97798{secrets.randbelow(10**8):08d}"
            taken = db.scalar(
                select(Contact.id).where(Contact.phone == phone, Contact.simulated.is_(True))
            )
            if taken is None:
                return phone


def _phone() -> str:
    """This browser session's simulated number (made on first use)."""
    if "sim_phone" not in session:
        session["sim_phone"] = _new_phone()
    return str(session["sim_phone"])


@bp.get("/")
def page() -> str:
    """The chat page."""
    return render_template("simulator.html", csrf_token=_token(), phone=_phone())


@bp.post("/phone")
def new_phone() -> Response:
    """Starts over as a new person: a new number, an empty thread."""
    _check_token()
    session["sim_phone"] = _new_phone()
    return jsonify(phone=session["sim_phone"])


@bp.post("/messages")
def send() -> Response:
    """Sends one message from the simulated phone."""
    _check_token()
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="expected a JSON object with the message's body")
    phone = _phone()
    body = str(data.get("body", ""))[:MAX_CHARS].replace("\x00", "")
    inbound = Inbound(
        channel=Channel.SIMULATOR, sender=phone, body=body, provider_id=f"SIM{uuid.uuid4().hex}"
    )
    accepted = _runtime().accept(inbound, simulated=True)
    return jsonify(id=accepted.message_id)


@bp.get("/messages")
def thread() -> Response:
    """This session's simulated phone's messages after `after` (the page polls this)."""
    phone = _phone()
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
        phone=phone,
        messages=[
            {
                "id": m.id,
                "direction": m.direction,
                "body": m.body,
                "status": m.status,
                "at": m.created_at.isoformat(),
            }
            for m in rows
        ],
    )
