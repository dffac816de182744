"""Two-factor sign-in: TOTP codes (RFC 6238, pyotp) and one-time recovery codes.

The secret is made while enrolling and used once the person has typed a code from their
app. A code is accepted for the time step it belongs to (30 s, one step of clock drift
either way) and only if that step is later than the last one accepted, so an overheard code
cannot be replayed. Recovery codes are shown once and kept as SHA-256 hashes (80 random bits
each: a hash cannot be reversed by trying them all). The secret is never logged or audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

import pyotp
import segno
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.db.models import RecoveryCode, User
from dashboard.accounts import AccountError, user_row

ISSUER = "Community info line"
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols: 5 bits each
_RECOVERY_LENGTH = 16  # 80 bits
_TOTP = re.compile(r"^\d{6}$")


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app reads (from the QR code or typed in)."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=email, issuer_name=ISSUER
    )


def qr_data_uri(uri: str) -> str:
    """The URI as a QR code, an SVG image in a data: URI (no script, no inline style)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def begin_enrolment(db: Database, user_id: int) -> str:
    """The secret to show while enrolling: made once, kept until enrolment is confirmed.

    Raises:
        AccountError: two-factor sign-in is already on for this account.
    """
    with db.write() as session:
        user = user_row(session, user_id)
        if user.totp_enabled_at is not None:
            raise AccountError("two-factor sign-in is already on")
        if not user.totp_secret:
            user.totp_secret = pyotp.random_base32()  # 160 bits
        return user.totp_secret


def _normalized(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (near `now`) whose code is `code`, else None."""
    if not _TOTP.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int(now.timestamp()) // STEP_SECONDS
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def _hash(code: str) -> str:
    return hashlib.sha256(_normalized(code).encode()).hexdigest()


def _new_codes(session: Session, user_id: int, now: datetime) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    session.add_all(
        RecoveryCode(user_id=user_id, code_hash=_hash(c), created_at=now) for c in codes
    )
    return codes


def confirm_enrolment(db: Database, user_id: int, code: str, now: datetime) -> list[str]:
    """Turns two-factor sign-in on once `code` matches the secret shown; the account's other
    sessions end. Returns the recovery codes (to show once).

    Raises:
        AccountError: no enrolment was started, or the code is not right.
    """
    with db.write() as session:
        user = user_row(session, user_id)
        if user.totp_enabled_at is not None:
            raise AccountError("two-factor sign-in is already on")
        if not user.totp_secret:
            raise AccountError("start again: no secret was shown")
        step = _matching_step(user.totp_secret, _normalized(code), now)
        if step is None:
            raise AccountError("that code is not right: check the app's clock and try again")
        user.totp_enabled_at = now
        user.totp_last_step = step
        user.session_version += 1
        return _new_codes(session, user_id, now)


def verify(db: Database, user_id: int, code: str, now: datetime) -> str | None:
    """Checks a second-factor code and uses it up.

    Returns:
        "totp" or "recovery" for the kind of code accepted, None when it is refused (wrong,
        already used, or two-factor sign-in is off).
    """
    typed = _normalized(code)
    with db.write() as session:
        user = session.get(User, user_id)
        if user is None or user.totp_enabled_at is None or not user.totp_secret:
            return None
        step = _matching_step(user.totp_secret, typed, now)
        if step is not None:
            # Conditional, so two requests with the same code cannot both pass.
            used = session.execute(
                update(User)
                .where(
                    User.id == user_id,
                    or_(User.totp_last_step.is_(None), User.totp_last_step < step),
                )
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            )
            return "totp" if used.rowcount == 1 else None  # type: ignore[attr-defined]
        if len(typed) != _RECOVERY_LENGTH:
            return None
        spent = session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == _hash(typed),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return "recovery" if spent.rowcount == 1 else None  # type: ignore[attr-defined]


def new_recovery_codes(db: Database, user_id: int, now: datetime) -> list[str]:
    """Replaces the account's recovery codes (the old ones stop working)."""
    with db.write() as session:
        if user_row(session, user_id).totp_enabled_at is None:
            raise AccountError("two-factor sign-in is off")
        return _new_codes(session, user_id, now)


def recovery_codes_left(db: Database, user_id: int) -> int:
    """How many unused recovery codes the account has."""
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(RecoveryCode)
                .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
            )
            or 0
        )


def turn_off(db: Database, user_id: int) -> None:
    """Turns two-factor sign-in off: the secret and the recovery codes are deleted."""
    with db.write() as session:
        user = user_row(session, user_id)
        user.totp_secret = None
        user.totp_enabled_at = None
        user.totp_last_step = None
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
