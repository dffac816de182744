"""The feedback inbox: by category and status; answer a person, change a status."""

from __future__ import annotations

import re

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import SelectChoice, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from bot.db.models import Contact, Feedback
from bot.feedback import STATUSES, FeedbackError, answer, set_status
from dashboard.accounts import STAFF
from dashboard.audit import record
from dashboard.blueprint import PAGE_SIZE, account, arg_choice, arg_int, bp, requires, runtime

CATEGORIES = ("complaint", "suggestion", "question", "rumour", "other")
REFERENCE = re.compile(r"^[A-Z]{2}-[A-Z0-9]{4,12}$")


class AnswerForm(FlaskForm):
    text = TextAreaField("Answer", validators=[DataRequired(), Length(max=1600)])


class StatusForm(FlaskForm):
    status = SelectField("Status", choices=[SelectChoice(s, s.replace("_", " ")) for s in STATUSES])


def _feedback(reference: str) -> Feedback:
    if not REFERENCE.match(reference):
        abort(404)
    with runtime().db.read() as db:
        found = db.scalar(select(Feedback).where(Feedback.reference == reference))
    if found is None:
        abort(404)
    return found


@bp.get("/feedback")
@requires(*STAFF)
def feedback_inbox() -> str:
    """Feedback, newest first, by category and status, with counts."""
    category = arg_choice("category", CATEGORIES)
    status = arg_choice("status", STATUSES)
    before = arg_int("before", minimum=1)
    f = Feedback.__table__.c
    c = Contact.__table__.c
    conditions = []
    if category:
        conditions.append(f.category == category)
    if status:
        conditions.append(f.status == status)
    with runtime().db.read() as db:
        counts = {
            (row.category, row.status): row.n
            for row in db.execute(
                select(f.category, f.status, func.count().label("n")).group_by(f.category, f.status)
            )
        }
        page = db.execute(
            select(
                f.id, f.reference, f.category, f.body, f.location, f.status, f.created_at, c.phone
            )
            .join(Contact.__table__, c.id == f.contact_id)
            .where(*conditions, *([f.id < before] if before else []))
            .order_by(f.id.desc())
            .limit(PAGE_SIZE + 1)
        ).all()
    return render_template(
        "dashboard/feedback.html",
        rows=page[:PAGE_SIZE],
        next_before=page[PAGE_SIZE - 1].id if len(page) > PAGE_SIZE else None,
        counts=counts,
        categories=CATEGORIES,
        statuses=STATUSES,
    )


@bp.get("/feedback/<reference>")
@requires(*STAFF)
def feedback_item(reference: str) -> str:
    """One piece of feedback, with the answer and status forms."""
    item = _feedback(reference)
    with runtime().db.read() as db:
        contact = db.get(Contact, item.contact_id)
    status_form = StatusForm()
    status_form.status.data = item.status
    return render_template(
        "dashboard/feedback_item.html",
        item=item,
        contact=contact,
        answer_form=AnswerForm(),
        status_form=status_form,
    )


@bp.post("/feedback/<reference>/answer")
@requires(*STAFF)
def feedback_answer(reference: str) -> Response:
    """Sends an answer to the person (through the outbox) and marks the feedback answered."""
    item = _feedback(reference)
    form = AnswerForm()
    if not form.validate_on_submit():
        flash("Write an answer of at most 1600 characters.", "error")
    else:
        try:
            sent = answer(runtime(), item.reference, form.text.data or "", by=account().label)
        except FeedbackError as exc:
            flash(str(exc), "error")
        else:
            with runtime().db.write() as db:
                record(
                    db,
                    account().label,
                    "feedback_answered",
                    {"reference": item.reference, "message_id": sent.message_id},
                )
            flash("Answer sent.", "ok")
    return redirect(url_for("dashboard.feedback_item", reference=item.reference), code=303)


@bp.post("/feedback/<reference>/status")
@requires(*STAFF)
def feedback_status(reference: str) -> Response:
    """Moves the feedback to another status."""
    item = _feedback(reference)
    form = StatusForm()
    if not form.validate_on_submit():
        abort(400, description=f"status must be one of {', '.join(STATUSES)}")
    set_status(runtime(), item.reference, form.status.data or "")
    with runtime().db.write() as db:
        record(
            db,
            account().label,
            "feedback_status",
            {"reference": item.reference, "status": form.status.data},
        )
    flash(f"Status: {(form.status.data or '').replace('_', ' ')}.", "ok")
    return redirect(url_for("dashboard.feedback_item", reference=item.reference), code=303)
