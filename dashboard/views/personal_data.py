"""One person's data from the contact page: export it (staff), erase it (admins only).

Both act on the number, so a person's simulated thread goes with their real one. Erasure is
confirmed by typing the number and audited with the contact id and the masked number.
"""

from __future__ import annotations

import io
import logging
import threading

from flask import Response, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as Redirect
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from bot.db.database import Database
from bot.personal_data.erase import erase, physical_erase
from bot.personal_data.export import collect, record_export, to_json, write_csv_zip
from bot.phone import InvalidPhone, to_e164
from bot.privacy import mask_phone
from dashboard.access import require_contact
from dashboard.accounts import ADMIN, STAFF
from dashboard.blueprint import account, arg_choice, bp, requires, runtime

log = logging.getLogger(__name__)
# Background VACUUMs after erasures (PostgreSQL), for whoever must wait for them (tests).
VACUUMS: list[threading.Thread] = []


class EraseForm(FlaskForm):
    phone = StringField("Type the number to confirm", validators=[DataRequired(), Length(max=32)])


def _vacuum(db: Database) -> None:
    try:
        log.info("after erasure: %s", physical_erase(db))
    except Exception:
        log.exception("VACUUM after erasure failed")


def _phone_of(contact_id: int) -> str:
    with runtime().db.read() as session:
        return require_contact(session, account(), contact_id).phone


def _download(body: bytes, mimetype: str, name: str) -> Response:
    return Response(
        body,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/contacts/<int:contact_id>/export")
@requires(*STAFF)
def contact_export(contact_id: int) -> Response:
    """Everything stored about the contact's number: JSON (`?format=json`, the default), or a
    zip of CSV files, one per table (`?format=csv`)."""
    fmt = arg_choice("format", ("json", "csv")) or "json"
    rt = runtime()
    now = rt.clock()
    data = collect(rt.db, _phone_of(contact_id), now)
    stamp = f"{now:%Y%m%d-%H%M%S}"
    if fmt == "json":
        response = _download(
            to_json(data).encode("utf-8"),
            "application/json",
            f"contact-{contact_id}-{stamp}.json",
        )
    else:
        buffer = io.BytesIO()
        write_csv_zip(data, buffer)
        response = _download(
            buffer.getvalue(), "application/zip", f"contact-{contact_id}-{stamp}-csv.zip"
        )
    record_export(rt.db, data, account().label, fmt, now)
    return response


@bp.route("/contacts/<int:contact_id>/erase", methods=["GET", "POST"])
@requires(ADMIN)
def contact_erase(contact_id: int) -> str | Redirect | tuple[str, int]:
    """Asks for the number, then erases everything about it (there is no undo)."""
    rt = runtime()
    with rt.db.read() as session:
        contact = require_contact(session, account(), contact_id)
    form = EraseForm()
    if not form.is_submitted():
        return render_template("dashboard/contact_erase.html", contact=contact, form=form)
    error = None
    if not form.validate_on_submit():
        error = "Type the contact's number to confirm."
    else:
        try:
            typed = to_e164(form.phone.data or "", rt.settings.default_region)
        except InvalidPhone:
            typed = None
        if typed != contact.phone:
            error = "The number you typed is not this contact's number: nothing was erased."
    if error:
        return render_template(
            "dashboard/contact_erase.html", contact=contact, form=form, error=error
        ), 400
    # SQLite's WAL truncation is quick; PostgreSQL's VACUUM of big tables may outlast the
    # request, so it runs after the answer (autovacuum would get there too, later).
    report = erase(
        rt.db,
        rt.settings,
        contact.phone,
        account().label,
        rt.clock(),
        huey=rt.huey,
        vacuum=rt.db.is_sqlite,
    )
    if not rt.db.is_sqlite:
        thread = threading.Thread(target=_vacuum, args=(rt.db,), name="erase-vacuum", daemon=True)
        VACUUMS[:] = [t for t in VACUUMS if t.is_alive()] + [thread]
        thread.start()
        report.physical.append("postgresql: VACUUM of the touched tables runs in the background")
    flash(f"Erased {mask_phone(contact.phone)} (contact {contact_id}).", "ok")
    # The session cookie carries flashes: the report's first lines, the files' count after.
    lines = report.lines()[1:]
    for line in lines[:6]:
        flash(line, "notice")
    if len(lines) > 6:
        flash(f"… and {len(lines) - 6} more lines in the service's log.", "notice")
    return redirect(url_for("dashboard.contacts"), code=303)
