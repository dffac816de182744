"""Engine set-up for SQLite (embedded default, WAL) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, checkpoint: bool = True) -> None:
    # Autocommit at the driver level; SQLAlchemy's "begin" event below emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted rows are overwritten with zeros, not left in free space for anyone who reads
    # the file: erasure (bot/personal_data/erase.py) relies on it (issue 12).
    cursor.execute("PRAGMA secure_delete=ON")
    if not checkpoint:
        # A commit that crosses 1,000 WAL pages would checkpoint while it holds the write
        # gate, and every webhook behind it would wait; Database.checkpoint() does it apart.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads and
    # then writes can fail with SQLITE_BUSY without waiting when another process wrote first.
    # Read-only work asks for a plain BEGIN with execution_options(readonly=True).
    conn.exec_driver_sql(
        "BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE"
    )


def _hide_error_detail(context: Any) -> None:
    """PostgreSQL's DETAIL quotes the values (`Key (phone)=(+977…)`, `Failing row contains
    (…)`): keep it out of the exception's text, which ends up in logs. `orig.diag` keeps it."""
    orig = context.original_exception
    detail = getattr(getattr(orig, "diag", None), "message_detail", None)
    if not detail:
        return
    for error in (orig, context.sqlalchemy_exception):
        if error is not None and error.args and isinstance(error.args[0], str):
            error.args = (error.args[0].replace(detail, "(values hidden)"), *error.args[1:])


def make_engine(url: str, background_checkpoint: bool = False, **kwargs: Any) -> Engine:
    """Creates an engine; SQLite files get WAL mode and their folder is created.

    With `background_checkpoint` commits never checkpoint the WAL themselves: the caller
    runs `PRAGMA wal_checkpoint(PASSIVE)` now and then, outside the write gate.
    """
    # An error names the statement, never its values: bound parameters are phone numbers
    # and message bodies, and exceptions end up in logs (issue 12).
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            # Every use ends in COMMIT or ROLLBACK (Database.begin/read), so the pool's own
            # ROLLBACK on return is a wasted round trip on the hot path.
            pool_reset_on_return=None,
            **kwargs,
        )
        event.listen(
            engine,
            "connect",
            lambda conn, record: _sqlite_pragmas(conn, record, not background_checkpoint),
        )
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # A database that does not answer must not hold a webhook past Twilio's patience.
    engine = create_engine(
        url,
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={"connect_timeout": 5, **DEAD_LINK},
        **kwargs,
    )
    if kwargs["hide_parameters"]:
        event.listen(engine, "handle_error", _hide_error_detail)
    return engine


# A link to PostgreSQL that goes silent (a network partition, a server that vanished without
# closing its sockets) must fail a query within seconds, not hang it: a thread blocked on it
# forever (the worker's recorder) holds every send it has to write down. libpq's TCP
# keepalives find an idle dead link in 10 + 3 × 5 s; tcp_user_timeout fails a query whose
# bytes the server does not acknowledge within 30 s (Linux; ignored elsewhere).
DEAD_LINK = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
