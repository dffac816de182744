"""Contacts: the list, one contact (location, groups, consent log) and CSV import."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import delete, select
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from bot.db.models import ConsentEvent, Contact, ContactGroup
from dashboard.access import contact_visible, require_contact
from dashboard.accounts import ROLES, STAFF, AccountError, clean_groups
from dashboard.audit import record
from dashboard.blueprint import (
    PAGE_SIZE,
    accepts_upload,
    account,
    arg_choice,
    arg_int,
    bp,
    requires,
    runtime,
)
from dashboard.contacts_import import MAX_BYTES, CsvImportError, preview, read_rows, save

UPLOAD_TTL = 24 * 3600


class ContactForm(FlaskForm):
    district = StringField("District", validators=[Optional(), Length(max=64)])
    municipality = StringField("Municipality", validators=[Optional(), Length(max=64)])
    ward = StringField("Ward", validators=[Optional(), Length(max=16)])
    groups = StringField("Groups (comma-separated)", validators=[Optional(), Length(max=1000)])


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired()])
    channel = SelectField(
        "Channel for rows without one",
        choices=[SelectChoice("whatsapp", "WhatsApp"), SelectChoice("sms", "SMS")],
    )
    group = StringField("Also add every row to the group", validators=[Optional(), Length(max=64)])


class ConfirmForm(FlaskForm):
    consent = BooleanField("These people agreed to receive messages from us")


def _groups_in_use() -> list[str]:
    viewer = account()
    if not viewer.sees_everything:
        return sorted(viewer.groups)
    with runtime().db.read() as db:
        return list(
            db.scalars(select(ContactGroup.group_name).distinct().order_by(ContactGroup.group_name))
        )


@bp.get("/contacts")
@requires(*ROLES)
def contacts() -> str:
    """Contacts, newest first, by phone digits, group, district and consent."""
    viewer = account()
    groups = _groups_in_use()
    group = arg_choice("group", frozenset(groups))
    consent = arg_choice("consent", ("in", "out"))
    before = arg_int("before", minimum=1)
    digits = re.sub(r"\D", "", request.args.get("phone", ""))[:16]
    district = request.args.get("district", "").strip()[:64]
    c = Contact.__table__.c
    conditions = [c.simulated.is_(False), contact_visible(viewer, c.id)]
    if digits:
        conditions.append(c.phone.like(f"%{digits}%"))
    if district:
        conditions.append(c.district == district)
    if consent:
        conditions.append(c.opted_out.is_(consent == "out"))
    if group:
        g = ContactGroup.__table__.c
        conditions.append(
            select(g.contact_id).where(g.contact_id == c.id, g.group_name == group).exists()
        )
    if before:
        conditions.append(c.id < before)
    with runtime().db.read() as db:
        rows = db.execute(
            select(
                c.id,
                c.phone,
                c.profile_name,
                c.channel,
                c.language,
                c.opted_out,
                c.district,
                c.municipality,
                c.ward,
                c.last_inbound_at,
            )
            .where(*conditions)
            .order_by(c.id.desc())
            .limit(PAGE_SIZE + 1)
        ).all()
        shown = rows[:PAGE_SIZE]
        g = ContactGroup.__table__.c
        tags: dict[int, list[str]] = {}
        for contact_id, name in db.execute(
            select(g.contact_id, g.group_name)
            .where(g.contact_id.in_([r.id for r in shown]))
            .order_by(g.group_name)
        ):
            tags.setdefault(contact_id, []).append(name)
    return render_template(
        "dashboard/contacts.html",
        rows=shown,
        tags=tags,
        groups=groups,
        next_before=shown[-1].id if len(rows) > PAGE_SIZE else None,
        can_import=viewer.role in STAFF,
    )


@bp.route("/contacts/<int:contact_id>", methods=["GET", "POST"])
@requires(*ROLES)
def contact(contact_id: int) -> str | Response:
    """One contact: location and groups (editable), consent state and its log."""
    viewer = account()
    rt = runtime()
    form = ContactForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, description="location fields are too long")
        try:
            wanted = clean_groups((form.groups.data or "").split(","))
        except AccountError as exc:
            flash(str(exc), "error")
            return redirect(url_for("dashboard.contact", contact_id=contact_id), code=303)
        with rt.db.write() as db:
            found = require_contact(db, viewer, contact_id)
            current = set(
                db.scalars(
                    select(ContactGroup.group_name).where(ContactGroup.contact_id == found.id)
                )
            )
            final = _groups_after(current, set(wanted), viewer.sees_everything, viewer.groups)
            if isinstance(final, str):
                refused = final
            else:
                refused = None
                found.district = (form.district.data or "").strip() or None
                found.municipality = (form.municipality.data or "").strip() or None
                found.ward = (form.ward.data or "").strip() or None
                found.updated_at = rt.clock()
                db.execute(
                    delete(ContactGroup).where(
                        ContactGroup.contact_id == found.id,
                        ContactGroup.group_name.in_(sorted(current - final)),
                    )
                )
                db.add_all(
                    ContactGroup(contact_id=found.id, group_name=g) for g in sorted(final - current)
                )
                record(db, viewer.label, "contact_updated", {"contact_id": found.id})
        if refused:
            flash(refused, "error")
            return redirect(url_for("dashboard.contact", contact_id=contact_id), code=303)
        flash("Saved.", "ok")
        return redirect(url_for("dashboard.contact", contact_id=contact_id), code=303)
    with rt.db.read() as db:
        found = require_contact(db, viewer, contact_id)
        groups = list(
            db.scalars(
                select(ContactGroup.group_name)
                .where(ContactGroup.contact_id == found.id)
                .order_by(ContactGroup.group_name)
            )
        )
        consent = db.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.contact_id == found.id)
            .order_by(ConsentEvent.id.desc())
            .limit(100)
        ).all()
    form.district.data = found.district
    form.municipality.data = found.municipality
    form.ward.data = found.ward
    form.groups.data = ", ".join(groups)
    return render_template(
        "dashboard/contact.html", contact=found, groups=groups, consent=consent, form=form
    )


def _groups_after(
    current: set[str], wanted: set[str], everything: bool, mine: frozenset[str]
) -> set[str] | str:
    """The contact's groups after an edit, or why the edit is refused.

    Coordinators set any groups. A mobilizer adds or removes only their own groups; the
    contact's other groups stay whatever the form says, and one of theirs must remain.
    """
    if everything:
        return wanted
    outside = wanted - mine - current
    if outside:
        return f"You can only add your own groups, not {', '.join(sorted(outside))}."
    final = (current - mine) | (wanted & mine)
    if not final & mine:
        return "Keep at least one of your groups, or the contact leaves your list."
    return final


def _uploads() -> Path:
    folder = runtime().settings.var_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        if time.time() - old.stat().st_mtime > UPLOAD_TTL:
            old.unlink(missing_ok=True)
    return folder


@bp.route("/contacts/import", methods=["GET", "POST"])
@requires(*STAFF)
@accepts_upload(MAX_BYTES + 64 * 1024)  # the file and the form's other fields
def contacts_import() -> str | tuple[str, int]:
    """Upload a CSV and see what importing it would do; nothing is saved yet."""
    form = ImportForm()
    if request.method == "GET":
        return render_template("dashboard/import.html", form=form, preview=None, error=None)
    if not form.validate_on_submit():
        return render_template(
            "dashboard/import.html", form=form, preview=None, error="Choose a CSV file."
        ), 400
    extra = (form.group.data or "").strip()
    try:
        extra_groups = clean_groups([extra]) if extra else []
        data = form.file.data.read(MAX_BYTES + 1)
        result = preview(
            runtime().db, data, runtime().settings.default_region, form.channel.data or "whatsapp"
        )
    except (CsvImportError, AccountError) as exc:
        return render_template(
            "dashboard/import.html", form=form, preview=None, error=str(exc)
        ), 400
    token = secrets.token_urlsafe(18)
    (_uploads() / f"{token}.csv").write_bytes(data)
    session["contact_import"] = {
        "token": token,
        "channel": form.channel.data,
        "groups": extra_groups,
    }
    return render_template(
        "dashboard/import.html",
        form=form,
        preview=result,
        confirm=ConfirmForm(),
        extra_groups=extra_groups,
        error=None,
    )


@bp.post("/contacts/import/confirm")
@requires(*STAFF)
def contacts_import_confirm() -> Response | tuple[str, int]:
    """Imports the file previewed in this session (its good rows only)."""
    form = ConfirmForm()
    pending = session.get("contact_import")
    if not form.validate_on_submit() or not pending:
        abort(400, description="upload the file again: the preview has expired")
    if not form.consent.data:
        flash("Confirm that these people agreed to receive messages.", "error")
        return redirect(url_for("dashboard.contacts_import"), code=303)
    path = _uploads() / f"{pending['token']}.csv"
    if not re.fullmatch(r"[\w-]{20,40}", pending["token"]) or not path.exists():
        abort(400, description="upload the file again: the preview has expired")
    rt = runtime()
    rows, bad = read_rows(path.read_bytes(), rt.settings.default_region, pending["channel"])
    created, updated = save(rt.db, rows, pending["groups"], rt.settings.phone_key)
    path.unlink(missing_ok=True)
    session.pop("contact_import", None)
    with rt.db.write() as db:
        record(
            db,
            account().label,
            "contacts_imported",
            {"created": created, "updated": updated, "skipped": len(bad)},
        )
    flash(f"Imported: {created} new, {updated} updated, {len(bad)} rows skipped.", "ok")
    return redirect(url_for("dashboard.contacts"), code=303)
