"""Who may start, approve and cancel a broadcast, checked every time it matters.

Rights are looked up afresh when a broadcast is asked for, when it is confirmed and again
when it fires: a mobilizer who left a group, or an account switched off, sends nothing more.
A broadcast whose creator is no dashboard account (the command line's `--by cli`) was made by
someone with the server's shell, and is not limited here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Broadcast, User, UserGroup

STAFF_ROLES = frozenset({"admin", "coordinator"})
BROADCASTING_ROLES = frozenset({"admin", "coordinator", "mobilizer"})
# How far ahead a recurring schedule is unrolled to find its shortest gap (two weeks covers
# every crontab line's weekly pattern twice).
GAP_HORIZON = timedelta(days=14)


@dataclass(frozen=True)
class Actor:
    """A dashboard account as the broadcast rules see it."""

    email: str
    role: str
    groups: frozenset[str]
    active: bool

    @property
    def staff(self) -> bool:
        """Coordinators and admins: any group, approve and cancel anyone's broadcasts."""
        return self.role in STAFF_ROLES


def actor_by(session: Session, email: str) -> Actor | None:
    """The account named `email`, or None when no account has that email."""
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        return None
    groups = session.scalars(select(UserGroup.group_name).where(UserGroup.user_id == user.id))
    return Actor(user.email, user.role, frozenset(groups), bool(user.active))


def audience_allowed(actor: Actor, audience: Mapping[str, Any] | None) -> bool:
    """Staff may address anyone; a mobilizer only one or more of their own groups."""
    if actor.staff:
        return True
    groups = {str(g).lower() for g in (audience or {}).get("groups") or ()}
    return bool(groups) and groups <= {g.lower() for g in actor.groups}


def may_manage(actor: Actor, row: Broadcast) -> bool:
    """Confirming or canceling a broadcast: its creator or staff only."""
    return actor.active and (actor.staff or row.created_by == actor.email)


def shortest_gap(cron: str, timezone: str, start: datetime) -> timedelta | None:
    """The shortest time between two firings of `cron` in the two weeks after `start`."""
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))
    previous = trigger.get_next_fire_time(None, start)
    shortest: timedelta | None = None
    while previous is not None and previous - start < GAP_HORIZON:
        following = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
        if following is None:
            break
        gap = following - previous
        shortest = gap if shortest is None else min(shortest, gap)
        if shortest <= timedelta(minutes=1):
            break  # it cannot get shorter than a crontab's minute
        previous = following
    return shortest


def refusal(
    session: Session, row: Broadcast, approval_needed: bool = True
) -> tuple[Actor | None, str | None]:
    """Why `row` must not go out now (None when it may), with its creator's account.

    Args:
        session: a database session to read the creator's account and groups.
        row: the broadcast about to be confirmed or to fire.
        approval_needed: whether a mobilizer's recurring broadcast needs staff approval
            (not yet when it is only being confirmed: confirming asks for the approval).
    """
    actor = actor_by(session, row.created_by)
    if actor is None:
        return None, None
    if not actor.active or actor.role not in BROADCASTING_ROLES:
        return actor, "the account that made it is switched off"
    if not audience_allowed(actor, row.audience):
        return actor, "its audience is no longer among its creator's groups"
    if approval_needed and row.schedule == "recurring" and not actor.staff and not row.approved_by:
        return actor, "a mobilizer's recurring broadcast needs a coordinator's approval"
    return actor, None
