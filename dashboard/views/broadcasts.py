"""Broadcasts: create with a live preview, schedule, cancel, and the delivery funnel.

The service is `bot.broadcasts.service` (the same one the command line and BROADCAST by SMS
use). Mobilizers send only to their own groups and see only those groups' broadcasts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import (
    DateTimeLocalField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from bot.broadcasts.audience import CHANNELS, LANGUAGES, Audience, AudienceError
from bot.broadcasts.desk import REQUESTED_BY_SMS
from bot.broadcasts.routing import Preview
from bot.broadcasts.service import (
    BROADCAST_CANCELED,
    DRAFT,
    PENDING_APPROVAL,
    SENT,
    BroadcastError,
    Draft,
    Funnel,
    approve,
    cancel,
    confirm,
    create,
    funnel,
    next_fire_time,
    preview_draft,
    preview_of,
)
from bot.core.status import MessageStatus
from bot.db.models import AuditEvent, Broadcast, ContactGroup
from dashboard.accounts import ROLES, STAFF, Account
from dashboard.audit import record
from dashboard.blueprint import PAGE_SIZE, account, arg_int, bp, requires, runtime
from dashboard.charts import bar_chart

SCHEDULE_CHOICES = [
    SelectChoice("now", "Send now"),
    SelectChoice("once", "Once, at a time"),
    SelectChoice("recurring", "Every week / day"),
]
# Mobilizers' lists are filtered here (audiences are JSON): look this far back.
SCAN_LIMIT = 500
# Broadcasts asked for by SMS from the signed-in person's phone are shown on every page
# for this long: the account holder learns of a request they did not make.
NOTICE_DAYS = 7


class BroadcastForm(FlaskForm):
    title = StringField("Title (for you)", validators=[DataRequired(), Length(max=200)])
    body_en = TextAreaField("Message in English", validators=[DataRequired(), Length(max=1600)])
    body_ne = TextAreaField("Message in Nepali", validators=[DataRequired(), Length(max=1600)])
    groups = SelectMultipleField("Groups (none: everyone)", choices=[])
    languages = SelectMultipleField("Languages", choices=[SelectChoice(x) for x in LANGUAGES])
    channels = SelectMultipleField("Channels", choices=[SelectChoice(x) for x in CHANNELS])
    district = StringField("District", validators=[Optional(), Length(max=64)])
    municipality = StringField("Municipality", validators=[Optional(), Length(max=64)])
    ward = StringField("Ward", validators=[Optional(), Length(max=16)])
    schedule = SelectField("When", choices=SCHEDULE_CHOICES)
    send_at = DateTimeLocalField("Send at", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    every = StringField("Every (e.g. “sun 08:00”)", validators=[Optional(), Length(max=100)])
    survey_key = SelectField("Invite to a survey", choices=[])
    template_en = StringField("WhatsApp template, English", validators=[Optional(), Length(max=64)])
    template_ne = StringField("WhatsApp template, Nepali", validators=[Optional(), Length(max=64)])


def _group_choices(viewer: Account) -> list[str]:
    if not viewer.sees_everything:
        return sorted(viewer.groups)
    with runtime().db.read() as session:
        return list(
            session.scalars(
                select(ContactGroup.group_name).distinct().order_by(ContactGroup.group_name)
            )
        )


def _form() -> BroadcastForm:
    form = BroadcastForm()
    form.groups.choices = [SelectChoice(g) for g in _group_choices(account())]
    surveys = sorted(k for k, flow in runtime().flows.current.items() if flow.kind == "survey")
    form.survey_key.choices = [SelectChoice("", "no survey"), *map(SelectChoice, surveys)]
    return form


def _draft(form: BroadcastForm, viewer: Account) -> Draft:
    """The form as a Draft; raises BroadcastError or AudienceError with what is wrong."""
    groups = tuple(form.groups.data or ())
    if not viewer.sees_everything and (not groups or not set(groups) <= viewer.groups):
        raise BroadcastError("choose at least one of your groups")
    audience = Audience.from_json(
        {
            "groups": list(groups),
            "languages": list(form.languages.data or ()),
            "channels": list(form.channels.data or ()),
            "district": form.district.data,
            "municipality": form.municipality.data,
            "ward": form.ward.data,
        }
    )
    send_at = None
    if form.schedule.data == "once":
        if form.send_at.data is None:
            raise BroadcastError("choose the date and time to send at")
        send_at = form.send_at.data.replace(tzinfo=runtime().settings.zone)
    return Draft(
        title=form.title.data or "",
        body_en=form.body_en.data or "",
        body_ne=form.body_ne.data or "",
        audience=audience,
        schedule=form.schedule.data or "now",
        send_at=send_at,
        every=(form.every.data or None) if form.schedule.data == "recurring" else None,
        survey_key=form.survey_key.data or None,
        template_en=form.template_en.data or None,
        template_ne=form.template_ne.data or None,
    )


def visible(viewer: Account, row: Broadcast) -> bool:
    """Mobilizers see the broadcasts they made and those to their groups only."""
    if viewer.sees_everything or row.created_by in (viewer.email, viewer.label):
        return True
    groups = set((row.audience or {}).get("groups") or ())
    return bool(groups) and groups <= viewer.groups


@bp.context_processor
def sms_requests() -> dict[str, Any]:
    """The signed-in person's recent broadcasts asked for by SMS from their phone."""
    if not current_user.is_authenticated:
        return {}
    rt = runtime()
    since = rt.clock() - timedelta(days=NOTICE_DAYS)
    with rt.db.read() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.action == REQUESTED_BY_SMS,
                AuditEvent.actor == current_user.email,
                AuditEvent.created_at >= since,
            )
            .order_by(AuditEvent.id.desc())
            .limit(5)
        ).all()
    return {"sms_requests": [(e.created_at, dict(e.detail or {})) for e in events]}


def manageable(viewer: Account, row: Broadcast) -> bool:
    """Confirming or canceling: its creator or staff (the service checks this again)."""
    return viewer.sees_everything or row.created_by == viewer.email


def _broadcast(broadcast_id: int) -> Broadcast:
    with runtime().db.read() as session:
        row = session.get(Broadcast, broadcast_id)
    if row is None or not visible(account(), row):
        abort(404)
    return row


def _managed(broadcast_id: int) -> Broadcast:
    row = _broadcast(broadcast_id)
    if not manageable(account(), row):
        abort(403)
    return row


@bp.get("/broadcasts")
@requires(*ROLES)
def broadcasts() -> str:
    """Broadcasts, newest first."""
    viewer = account()
    before = arg_int("before", minimum=1)
    query = select(Broadcast).order_by(Broadcast.id.desc())
    if before:
        query = query.where(Broadcast.id < before)
    limit = PAGE_SIZE + 1 if viewer.sees_everything else SCAN_LIMIT
    with runtime().db.read() as session:
        rows = [r for r in session.scalars(query.limit(limit)) if visible(viewer, r)]
    return render_template(
        "dashboard/broadcasts.html",
        rows=rows[:PAGE_SIZE],
        next_before=rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None,
        describe=lambda raw: Audience.from_json(raw).describe(),
    )


def _preview_or_error(form: BroadcastForm) -> tuple[Preview | None, str | None]:
    try:
        return preview_draft(runtime().broadcasts, _draft(form, account())), None
    except (BroadcastError, AudienceError) as exc:
        return None, str(exc)


@bp.route("/broadcasts/new", methods=["GET", "POST"])
@requires(*ROLES)
def broadcast_new() -> str | Response | tuple[str, int]:
    """The new-broadcast form with its preview; "Create" saves a draft to confirm."""
    form = _form()
    if request.method == "GET":
        if not form.schedule.data:
            form.schedule.data = "now"
        return render_template("dashboard/broadcast_new.html", form=form, preview=None, error=None)
    if not form.validate_on_submit():
        errors = "; ".join(
            f"{form[name].label.text}: {', '.join(e)}" for name, e in form.errors.items()
        )
        return render_template(
            "dashboard/broadcast_new.html", form=form, preview=None, error=errors
        ), 400
    preview, error = _preview_or_error(form)
    if error or request.form.get("action") != "create":
        status = 400 if error else 200
        return render_template(
            "dashboard/broadcast_new.html", form=form, preview=preview, error=error
        ), status
    try:
        ports = runtime().broadcasts
        broadcast_id = create(ports, _draft(form, account()), created_by=account().email)
    except (BroadcastError, AudienceError) as exc:
        return render_template(
            "dashboard/broadcast_new.html", form=form, preview=preview, error=str(exc)
        ), 400
    with runtime().db.write() as session:
        record(session, account().label, "broadcast_created", {"broadcast_id": broadcast_id})
    flash("Draft saved. Check it, then send or schedule it.", "ok")
    return redirect(url_for("dashboard.broadcast", broadcast_id=broadcast_id), code=303)


@bp.post("/broadcasts/preview")
@requires(*ROLES)
def broadcast_preview() -> tuple[str, int]:
    """The preview panel alone, for the form's live preview (fetched as you type)."""
    form = _form()
    if not form.validate_on_submit():
        return render_template(
            "dashboard/_broadcast_preview.html",
            preview=None,
            error="Fill in the title and both messages to see the preview.",
        ), 200
    preview, error = _preview_or_error(form)
    return render_template("dashboard/_broadcast_preview.html", preview=preview, error=error), 200


def funnel_rows(result: Funnel) -> list[tuple[str, float]]:
    """The funnel's stages as chart rows, widest first."""
    s = MessageStatus
    count = result.statuses
    waiting = sum(count[status] for status in (s.PLANNED, s.PENDING, s.DISPATCHING))
    return [
        ("messages", float(result.total)),
        ("waiting to be sent", float(waiting)),
        ("handed to Twilio", float(result.stage(s.QUEUED))),
        ("sent", float(result.stage(s.SENT))),
        ("delivered", float(result.stage(s.DELIVERED))),
        ("read (WhatsApp)", float(result.stage(s.READ))),
        ("failed", float(count[s.FAILED] + count[s.UNDELIVERED])),
        ("skipped", float(count[s.SKIPPED])),
        ("canceled", float(count[s.CANCELED])),
    ]


@bp.get("/broadcasts/<int:broadcast_id>")
@requires(*ROLES)
def broadcast(broadcast_id: int) -> str:
    """One broadcast: texts, audience, schedule, its preview and its delivery funnel."""
    row = _broadcast(broadcast_id)
    rt = runtime()
    current: Preview | None = None
    if row.status == DRAFT or row.status == "scheduled":
        current = preview_of(rt.broadcasts, row.id)
    result = funnel(rt.broadcasts, row.id)
    upcoming: datetime | None = next_fire_time(row, rt.clock())
    details: dict[str, Any] = {
        "audience": Audience.from_json(row.audience).describe(),
        "next": upcoming,
    }
    return render_template(
        "dashboard/broadcast.html",
        row=row,
        details=details,
        preview=current,
        funnel=result,
        funnel_chart=bar_chart(funnel_rows(result), "Delivery funnel") if result.total else None,
        can_confirm=row.status == DRAFT and manageable(account(), row),
        can_cancel=row.status not in (SENT, BROADCAST_CANCELED) and manageable(account(), row),
        can_approve=row.status == PENDING_APPROVAL and account().sees_everything,
    )


@bp.post("/broadcasts/<int:broadcast_id>/confirm")
@requires(*ROLES)
def broadcast_confirm(broadcast_id: int) -> Response:
    """Sends a draft now, or hands it to the scheduler (a mobilizer's recurring broadcast
    waits for a coordinator's approval first)."""
    row = _managed(broadcast_id)
    try:
        outcome = confirm(runtime().broadcasts, row.id, by=account().email)
    except BroadcastError as exc:
        flash(str(exc), "error")
    else:
        with runtime().db.write() as session:
            record(session, account().label, "broadcast_confirmed", {"broadcast_id": row.id})
        flash(
            {
                "sending": "Sending.",
                PENDING_APPROVAL: "Waiting for a coordinator's approval.",
            }.get(outcome, "Scheduled."),
            "ok",
        )
    return redirect(url_for("dashboard.broadcast", broadcast_id=row.id), code=303)


@bp.post("/broadcasts/<int:broadcast_id>/approve")
@requires(*STAFF)
def broadcast_approve(broadcast_id: int) -> Response:
    """A coordinator approves a mobilizer's recurring broadcast: it is scheduled."""
    row = _broadcast(broadcast_id)
    try:
        approve(runtime().broadcasts, row.id, by=account().email)
    except BroadcastError as exc:
        flash(str(exc), "error")
    else:
        with runtime().db.write() as session:
            record(session, account().label, "broadcast_approved", {"broadcast_id": row.id})
        flash("Approved and scheduled.", "ok")
    return redirect(url_for("dashboard.broadcast", broadcast_id=row.id), code=303)


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
@requires(*ROLES)
def broadcast_cancel(broadcast_id: int) -> Response:
    """Cancels a broadcast: nothing not yet handed to Twilio goes out."""
    row = _managed(broadcast_id)
    try:
        canceled = cancel(runtime().broadcasts, row.id, by=account().email)
    except BroadcastError as exc:
        flash(str(exc), "error")
    else:
        with runtime().db.write() as session:
            record(
                session,
                account().label,
                "broadcast_canceled",
                {"broadcast_id": row.id, "messages": canceled},
            )
        flash(f"Canceled ({canceled} planned messages will not be sent).", "ok")
    return redirect(url_for("dashboard.broadcast", broadcast_id=row.id), code=303)
