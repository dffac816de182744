"""Conversations: the list, search, one contact's thread, manual replies and handoff."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectChoice, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from dashboard.access import require_contact
from dashboard.accounts import ROLES
from dashboard.blueprint import (
    PAGE_SIZE,
    account,
    arg_choice,
    arg_date,
    arg_int,
    bp,
    requires,
    runtime,
    state,
)
from dashboard.conversations import (
    CHANNELS,
    LANGUAGES,
    Cursor,
    FilterError,
    Filters,
    list_conversations,
    search_messages,
    thread,
)
from dashboard.handoff import MAX_REPLY, PAUSE_CHOICES, HandoffError, release, reply_by_hand


class ReplyForm(FlaskForm):
    body = TextAreaField("Reply", validators=[DataRequired(), Length(max=MAX_REPLY)])
    pause_hours = SelectField("Then keep the bot quiet for", coerce=int)


def _reply_form() -> ReplyForm:
    form = ReplyForm()
    form.pause_hours.choices = [SelectChoice(str(h), f"{h} hours") for h in PAUSE_CHOICES]
    if form.pause_hours.data is None:
        default = state().settings.handoff_hours
        form.pause_hours.data = default if default in PAUSE_CHOICES else 24
    return form


def topics() -> dict[str, str]:
    """FAQ intents and their English questions, for filters and the NLU review."""
    return {
        topic.intent: topic.question.get("en", topic.key)  # type: ignore[call-overload]
        for topic in runtime().bot.faq.values()
    }


@bp.get("/conversations")
@requires(*ROLES)
def conversations() -> str:
    """The conversation list: search by phone or text, filter, page by keyset."""
    known_topics = topics()
    error = None
    try:
        filters = Filters.build(
            phone=request.args.get("phone", ""),
            text=request.args.get("q", ""),
            since=arg_date("since"),
            until=arg_date("until"),
            channel=arg_choice("channel", CHANNELS),
            language=arg_choice("language", LANGUAGES),
            topic=arg_choice("topic", frozenset(known_topics)),
            unanswered=request.args.get("unanswered") == "1",
            zone=runtime().settings.zone,
        )
    except FilterError as exc:
        error = str(exc)
        filters = Filters()
    after_raw = request.args.get("after", "").strip()
    try:
        after = Cursor.decode(after_raw) if after_raw else None
    except ValueError:
        abort(400, description="the page link is broken: start from the first page")
    before = arg_int("before", minimum=1)
    searched_to = None
    with runtime().db.read() as session:
        if filters.text:
            hits = search_messages(session, account(), filters, before, PAGE_SIZE)
            rows, next_cursor, mode = hits.rows, hits.next_cursor, "search"
            searched_to = hits.searched_to
        else:
            page = list_conversations(session, account(), filters, after, PAGE_SIZE)
            rows, next_cursor, mode = page.rows, page.next_cursor, "list"  # type: ignore[assignment]
    status = 400 if error else 200
    return render_template(
        "dashboard/conversations.html",
        rows=rows,
        mode=mode,
        next_cursor=next_cursor,
        error=error,
        topics=known_topics,
        channels=CHANNELS,
        languages=LANGUAGES,
        first_page=after is None and before is None,
        searched_to=searched_to,
    ), status  # type: ignore[return-value]


@bp.get("/conversations/<int:contact_id>")
@requires(*ROLES)
def conversation(contact_id: int) -> str:
    """One contact's thread, with the reply form and the handoff state."""
    before = arg_int("before", minimum=1)
    rt = runtime()
    with rt.db.read() as session:
        contact = require_contact(session, account(), contact_id)
        messages, older = thread(session, contact.id, before)
    paused = contact.paused_until is not None and contact.paused_until > rt.clock()
    return render_template(
        "dashboard/thread.html",
        contact=contact,
        messages=messages,
        older=older,
        paused=paused,
        form=_reply_form(),
        topics=topics(),
        max_reply=MAX_REPLY,
    )


@bp.post("/conversations/<int:contact_id>/reply")
@requires(*ROLES)
def reply(contact_id: int) -> Response | tuple[str, int]:
    """Sends a reply by hand and pauses the bot for this contact."""
    form = _reply_form()
    if not form.validate_on_submit():
        flash("Write a reply of at most 1600 characters.", "error")
        return redirect(url_for("dashboard.conversation", contact_id=contact_id), code=303)
    try:
        reply_by_hand(runtime(), account(), contact_id, form.body.data or "", form.pause_hours.data)
    except HandoffError as exc:
        flash(str(exc), "error")
        return redirect(url_for("dashboard.conversation", contact_id=contact_id), code=303)
    flash(
        f"Reply sent. The bot stays quiet for this person for {form.pause_hours.data} hours "
        "unless you release it.",
        "ok",
    )
    return redirect(url_for("dashboard.conversation", contact_id=contact_id), code=303)


@bp.post("/conversations/<int:contact_id>/release")
@requires(*ROLES)
def release_handoff(contact_id: int) -> Response:
    """Lets the bot answer this contact automatically again."""
    release(runtime(), account(), contact_id)
    flash("The bot answers this person automatically again.", "ok")
    return redirect(url_for("dashboard.conversation", contact_id=contact_id), code=303)
