"""Dashboard accounts: roles, password hashing, and the user service the CLI and pages share.

Passwords are hashed with scrypt (werkzeug.security). A session names the account and a
token derived from its password hash and its session version, so changing a password,
deactivating an account or "sign out everywhere" (which raises the version) ends every
session that account had.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask_login import UserMixin
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from bot.db.database import Database
from bot.db.models import User, UserGroup, utcnow
from bot.phone import InvalidPhone, to_e164

ADMIN = "admin"
COORDINATOR = "coordinator"
MOBILIZER = "mobilizer"
ROLES = (ADMIN, COORDINATOR, MOBILIZER)
# Roles that see everything in the organisation (one organisation per deployment).
STAFF = frozenset({ADMIN, COORDINATOR})
MIN_PASSWORD = 10
MAX_PASSWORD = 200
EMAIL = re.compile(r"^[^@\s]{1,100}@[^@\s]+\.[^@\s]+$")
GROUP = re.compile(r"^[\w][\w .-]{0,63}$")
# Checked against when an account does not exist, so both answers take as long.
_DUMMY_HASH = generate_password_hash("not-a-real-password-0123456789")


class AccountError(ValueError):
    """The account change is not allowed; the message says why (shown to the person)."""


@dataclass(frozen=True, eq=False)
class Account(UserMixin):
    """The signed-in person, as every request sees them."""

    id: int
    email: str
    name: str | None
    role: str
    groups: frozenset[str] = field(default_factory=frozenset)
    session_token: str = ""
    # The password was chosen by someone else: nothing opens until it is changed.
    must_change_password: bool = False
    # Signs in with a TOTP code (or a recovery code) after the password.
    two_factor: bool = False

    def get_id(self) -> str:
        """Flask-Login's session identity: the id and the token of this session generation."""
        return f"{self.id}:{self.session_token}"

    @property
    def sees_everything(self) -> bool:
        """Admins and coordinators see every contact; mobilizers only their groups'."""
        return self.role in STAFF

    @property
    def label(self) -> str:
        """How the person is named in the audit log and on answers."""
        return self.name or self.email


def session_token(password_hash: str | None, version: int = 0) -> str:
    """A short token that changes whenever the password or the session version does."""
    return hashlib.sha256(f"{version}:{password_hash or ''}".encode()).hexdigest()[:16]


def session_identity(user: User) -> str:
    """What a session stores to name this account (Flask-Login's user id)."""
    return f"{user.id}:{session_token(user.password_hash, user.session_version)}"


def normalize_email(email: str) -> str:
    """Lower-cased and stripped; raises AccountError when it does not look like an email."""
    value = email.strip().lower()
    if not EMAIL.match(value) or len(value) > 200:
        raise AccountError(f"{email[:60]!r} is not an email address")
    return value


def check_password_strength(password: str) -> None:
    """Raises AccountError for a password that is too short or too long."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")


def clean_groups(groups: Iterable[str]) -> list[str]:
    """Group names stripped, de-duplicated and checked (letters, digits, space, `.-_`)."""
    cleaned: list[str] = []
    for raw in groups:
        name = raw.strip()
        if not name:
            continue
        if not GROUP.match(name):
            raise AccountError(f"{name[:70]!r} is not a group name (letters, digits, - and _)")
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


def load_account(db: Database, user_id: int, token: str) -> Account | None:
    """The active account with this id whose session token matches, else None."""
    with db.read() as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            return None
        expected = session_token(user.password_hash, user.session_version)
        if not hmac.compare_digest(expected, token):
            return None
        groups = session.scalars(select(UserGroup.group_name).where(UserGroup.user_id == user.id))
        return Account(
            user.id,
            user.email,
            user.name,
            user.role,
            frozenset(groups),
            token,
            must_change_password=user.must_change_password,
            two_factor=user.totp_enabled_at is not None,
        )


def reload_account(db: Database, user_id: int) -> Account | None:
    """The active account with this id, with its current session token (after a change)."""
    with db.read() as session:
        user = session.get(User, user_id)
        token = session_token(user.password_hash, user.session_version) if user else ""
    return load_account(db, user_id, token) if token else None


def authenticate(db: Database, email: str, password: str) -> Account | None:
    """The account if the email and password match an active user, else None."""
    try:
        address = normalize_email(email)
    except AccountError:
        address = None
    with db.write() as session:
        user = session.scalar(select(User).where(User.email == address)) if address else None
        if user is None or not user.password_hash or not user.active:
            check_password_hash(_DUMMY_HASH, password)  # the same work as a real check
            return None
        if not check_password_hash(user.password_hash, password):
            return None
        user.last_login_at = utcnow()
        user_id = user.id
    return reload_account(db, user_id)


@dataclass(frozen=True)
class UserRow:
    """A user as the admin page and `bot users list` show it."""

    id: int
    email: str
    name: str | None
    phone: str | None
    role: str
    active: bool
    groups: tuple[str, ...]
    last_login: str
    two_factor: bool = False
    must_change_password: bool = False


def _groups_of(session: Session, user_id: int) -> list[str]:
    return list(
        session.scalars(
            select(UserGroup.group_name)
            .where(UserGroup.user_id == user_id)
            .order_by(UserGroup.group_name)
        )
    )


def list_users(db: Database) -> list[UserRow]:
    """Every account, by email."""
    with db.read() as session:
        users = session.scalars(select(User).order_by(User.email)).all()
        return [
            UserRow(
                u.id,
                u.email,
                u.name,
                u.phone,
                u.role,
                u.active,
                tuple(_groups_of(session, u.id)),
                u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never",
                u.totp_enabled_at is not None,
                u.must_change_password,
            )
            for u in users
        ]


def _role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role[:30]!r}")
    return role


def _phone(phone: str | None, region: str) -> str | None:
    if phone is None or not phone.strip():
        return None
    try:
        return to_e164(phone, region)
    except InvalidPhone:
        raise AccountError(f"{phone[:40]!r} is not a phone number") from None


def create_user(
    db: Database,
    email: str,
    role: str,
    password: str,
    name: str | None = None,
    phone: str | None = None,
    groups: Iterable[str] = (),
    region: str = "NP",
    must_change_password: bool = False,
) -> int:
    """Creates an account and returns its id.

    `must_change_password` is for a password someone else chose (the first admin's, an
    account an admin made): its holder must replace it at the first sign-in.

    Raises:
        AccountError: a field is invalid or the email (or phone) is already used.
    """
    address = normalize_email(email)
    check_password_strength(password)
    number = _phone(phone, region)
    names = clean_groups(groups)
    with db.write() as session:
        if session.scalar(select(User.id).where(User.email == address)) is not None:
            raise AccountError(f"there is already an account for {address}")
        if number and session.scalar(select(User.id).where(User.phone == number)) is not None:
            raise AccountError(f"another account already has the phone {number}")
        user = User(
            email=address,
            name=(name or "").strip()[:200] or None,
            phone=number,
            role=_role(role),
            password_hash=generate_password_hash(password),
            active=True,
            must_change_password=must_change_password,
            created_at=utcnow(),
        )
        session.add(user)
        session.flush()
        session.add_all(UserGroup(user_id=user.id, group_name=g) for g in names)
        return user.id


def user_row(session: Session, user_id: int) -> User:
    """The account's row (AccountError when there is none)."""
    user = session.get(User, user_id)
    if user is None:
        raise AccountError(f"no user with id {user_id}")
    return user


def user_id_for(db: Database, email: str) -> int:
    """The id of the account with this email (AccountError when there is none)."""
    address = normalize_email(email)
    with db.read() as session:
        user_id = session.scalar(select(User.id).where(User.email == address))
    if user_id is None:
        raise AccountError(f"no account for {address}")
    return int(user_id)


def update_user(
    db: Database,
    user_id: int,
    *,
    role: str | None = None,
    name: str | None = None,
    groups: Iterable[str] | None = None,
    active: bool | None = None,
    phone: str | None = None,
    region: str = "NP",
) -> None:
    """Changes an account's role, name, groups, phone or active flag (None leaves it)."""
    names = clean_groups(groups) if groups is not None else None
    number = _phone(phone, region) if phone is not None else None
    with db.write() as session:
        user = user_row(session, user_id)
        was_admin = user.role == ADMIN and user.active
        if role is not None:
            user.role = _role(role)
        if name is not None:
            user.name = name.strip()[:200] or None
        if active is not None:
            if user.active and not active:
                user.session_version += 1  # its sessions stay ended if it is enabled again
            user.active = active
        if phone is not None:
            if number and session.scalar(
                select(User.id).where(User.phone == number, User.id != user_id)
            ):
                raise AccountError(f"another account already has the phone {number}")
            user.phone = number
        if names is not None:
            session.execute(delete(UserGroup).where(UserGroup.user_id == user_id))
            session.add_all(UserGroup(user_id=user_id, group_name=g) for g in names)
        if was_admin and not (user.role == ADMIN and user.active):
            _keep_an_admin(session)


def _keep_an_admin(session: Session) -> None:
    session.flush()
    admins = session.scalar(
        select(User.id).where(User.role == ADMIN, User.active.is_(True)).limit(1)
    )
    if admins is None:
        raise AccountError("this would leave no active admin")


def set_password(db: Database, user_id: int, password: str, *, must_change: bool = False) -> None:
    """Sets a new password; the account's existing sessions end.

    Args:
        must_change: someone else chose it (an admin's reset): its holder must replace it
            at the next sign-in.
    """
    check_password_strength(password)
    with db.write() as session:
        user = user_row(session, user_id)
        user.password_hash = generate_password_hash(password)
        user.must_change_password = must_change
        user.session_version += 1


def change_own_password(db: Database, user_id: int, current: str, new: str) -> None:
    """The holder replaces their password: the current one must match, the new one differ.

    Every session of the account ends (the caller signs the person in again).

    Raises:
        AccountError: the current password is wrong, or the new one is too short, too long
            or the same as the old one.
    """
    check_password_strength(new)
    with db.read() as session:
        old_hash = user_row(session, user_id).password_hash or _DUMMY_HASH
    if not check_password_hash(old_hash, current):
        raise AccountError("the current password is wrong")
    if check_password_hash(old_hash, new):
        raise AccountError("the new password must differ from the old one")
    set_password(db, user_id, new, must_change=False)


def check_password(db: Database, user_id: int, password: str) -> bool:
    """True when `password` is the account's (asked again before a sensitive change)."""
    with db.read() as session:
        user = session.get(User, user_id)
        stored = user.password_hash if user is not None else None
    return check_password_hash(stored or _DUMMY_HASH, password) and stored is not None


def sign_out_everywhere(db: Database, user_id: int) -> None:
    """Ends every session of the account, on every device."""
    with db.write() as session:
        user_row(session, user_id).session_version += 1


FIRST_ADMIN = "admin@example.org"


def create_first_admin(db: Database) -> str | None:
    """A new installation's one admin account, so the dashboard can be opened straight away.

    Returns its password, to be shown once (it must be changed at the first sign-in), or None
    when there are accounts already.
    """
    with db.read() as session:
        if session.scalar(select(User.id).limit(1)) is not None:
            return None
    password = secrets.token_urlsafe(12)
    create_user(db, FIRST_ADMIN, "admin", password, name="Administrator", must_change_password=True)
    return password
