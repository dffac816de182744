"""Who may see which contacts: coordinators and admins all, mobilizers their groups' only."""

from __future__ import annotations

from typing import Any

from flask import abort
from sqlalchemy import ColumnElement, exists, select, true
from sqlalchemy.orm import Session

from bot.db.models import Contact, ContactGroup
from dashboard.accounts import Account


def contact_visible(viewer: Account, contact_id: Any = Contact.id) -> ColumnElement[bool]:
    """A condition on `contact_id` (a column or value): the viewer may see that contact.

    Mobilizers see the contacts in at least one of their groups (contact_groups ∩
    user_groups); a mobilizer with no group sees nobody.
    """
    if viewer.sees_everything:
        return true()
    return exists(
        select(ContactGroup.contact_id).where(
            ContactGroup.contact_id == contact_id,
            ContactGroup.group_name.in_(sorted(viewer.groups)),
        )
    )


def require_contact(session: Session, viewer: Account, contact_id: int) -> Contact:
    """The contact if it exists and the viewer may see it; 404 otherwise.

    A contact outside a mobilizer's groups is a 404, not a 403: its existence is not theirs
    to learn.
    """
    contact = session.scalar(
        select(Contact).where(Contact.id == contact_id, contact_visible(viewer, Contact.id))
    )
    if contact is None:
        abort(404)
    return contact
