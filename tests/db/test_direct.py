"""bot/db/direct.py: the hot path's statements on SQLite's cursor send exactly what SQLAlchemy
would send, read back what it would read, and fail as it would fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, exc
from sqlalchemy.dialects.postgresql import psycopg

from bot.core.status import MessageStatus
from bot.db.database import Database
from bot.db.direct import Direct
from bot.db.statements import Statements
from bot.outbox import outbound_row

NOW = datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    return sqlite_db


def _contact(phone: str = "+9779800000001", simulated: bool = False) -> dict[str, Any]:
    return {
        "phone": phone,
        "phone_hash": "",
        "simulated": simulated,
        "channel": "sms",
        "has_sms": True,
        "has_whatsapp": False,
        "profile_name": "Sita",
        "provider": "twilio",
        "now": NOW,
    }


def _inbound(contact_id: int, sid: str = "SM1") -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "channel": "sms",
        "body": "समुदाय परिचालक को हो?",
        "provider_sid": sid,
        "provider": "twilio",
        "num_media": 1,
        "media_urls": ["https://example.org/a.jpg"],
        "now": NOW,
    }


def _reply(contact_id: int, body: str = "Namaste", seq: int = 0) -> dict[str, Any]:
    return outbound_row(
        contact_id,
        "sms",
        body,
        "ne",
        "reply",
        NOW,
        status=MessageStatus.DISPATCHING,
        provider="twilio",
        in_reply_to_id=1,
        seq=seq,
        claimed_until=NOW + timedelta(minutes=5),
        claimed_by="vm:1/worker-1",
    )


def _bump(contact_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "version": 0,
        "language": "ne",
        "opted_out": False,
        "opted_out_at": None,
        "last_language": "ne",
        "state": {"flow": {"id": "s1", "answers": {"q1": "हो"}}},
        "now": NOW,
        **changes,
    }


def _cases(sql: Statements) -> list[tuple[str, Any, Any]]:
    """Each hot statement with parameters as the service gives them (contact 1, message 1)."""
    return [
        ("upsert_contact", sql.upsert_contact, _contact()),
        ("insert_inbound", sql.insert_inbound, _inbound(1)),
        ("contact_by_id", sql.contact_by_id, {"contact_id": 1}),
        ("oldest_received", sql.oldest_received, {"contact_id": 1}),
        ("bump_contact", sql.bump_contact, _bump(1)),
        (
            "mark_processed",
            sql.mark_processed,
            {"message_id": 1, "intent": "faq", "confidence": 0.93, "language": "ne", "now": NOW},
        ),
        ("held_sends", sql.held_sends, {"contact_id": 1, "now": NOW}),
        ("insert_outbound", sql.insert_outbound, [_reply(1), _reply(1, "Second", 1)]),
        (
            "record_sent",
            sql.record_sent,
            [
                {"message_id": 2, "sid": "SMa", "status": "queued", "attempts": 1, "now": NOW},
                {"message_id": 3, "sid": "SMb", "status": "sent", "attempts": 1, "now": NOW},
            ],
        ),
    ]


def _sent_by_sqlalchemy(conn: Connection, statement: Any, params: Any) -> tuple[str, list[Any]]:
    """The SQL and parameter rows SQLAlchemy hands the driver for this statement."""
    seen: list[tuple[str, Any, bool]] = []

    def record(_c: Any, _cursor: Any, sql: str, parameters: Any, _ctx: Any, many: bool) -> None:
        seen.append((sql, parameters, many))

    event.listen(conn, "before_cursor_execute", record)
    try:
        result = conn.execute(statement, params)
        if result.returns_rows:
            result.all()
    finally:
        event.remove(conn, "before_cursor_execute", record)
    sql, parameters, many = seen[0]
    if len(seen) > 1:  # one execution per row (INSERT … RETURNING, rows in order)
        assert {s for s, _, _ in seen} == {sql}
        return sql, [tuple(p) for _, p, _ in seen]
    if many:
        return sql, [tuple(p) for p in parameters]
    return sql, [tuple(parameters)]


def test_every_hot_statement_sends_the_sql_and_values_sqlalchemy_sends(db: Database) -> None:
    direct = Direct(db.engine.dialect)
    with db.begin() as conn:  # in turn: each case's rows are there for the next ones
        sent = [_sent_by_sqlalchemy(conn, s, p) for _, s, p in _cases(db.sql)]
    for (name, statement, params), expected in zip(_cases(db.sql), sent, strict=True):
        sets = params if isinstance(params, list) else [params]
        plan = direct.plan(statement, tuple(sorted(sets[0])) if statement.is_dml else None)
        assert plan is not None, f"{name} would run through SQLAlchemy's machinery"
        assert (plan.sql, [plan.values(s) for s in sets]) == expected, name


def test_rows_read_directly_equal_rows_read_through_sqlalchemy(db: Database) -> None:
    sql = db.sql
    with db.begin() as conn:
        contact_id = sql.run(conn, sql.upsert_contact, _contact()).scalar_one()
        sql.run(conn, sql.insert_inbound, _inbound(contact_id))
        sql.run(conn, sql.bump_contact, _bump(contact_id, opted_out=True, opted_out_at=NOW))
    for statement in (sql.contact_by_id, sql.oldest_received):
        with db.begin_read() as conn:
            direct = sql.run(conn, statement, {"contact_id": contact_id}).all()
            through = conn.execute(statement, {"contact_id": contact_id}).all()
        assert [tuple(r) for r in direct] == [tuple(r) for r in through]
        assert [r._fields for r in direct] == [tuple(r._fields) for r in through]
    with db.begin_read() as conn:
        row = sql.run(conn, sql.contact_by_id, {"contact_id": contact_id}).first()
    assert row.opted_out is True and row.opted_out_at == NOW  # bool, aware datetime
    assert row.state == {"flow": {"id": "s1", "answers": {"q1": "हो"}}}


def test_rows_written_directly_read_back_through_sqlalchemy(db: Database) -> None:
    sql = db.sql
    with db.begin() as conn:
        contact_id = sql.run(conn, sql.upsert_contact, _contact()).scalar_one()
        again = sql.run(conn, sql.upsert_contact, _contact()).scalar_one()
        first = sql.run(conn, sql.insert_inbound, _inbound(contact_id)).scalar_one_or_none()
        repeat = sql.run(conn, sql.insert_inbound, _inbound(contact_id)).scalar_one_or_none()
    assert again == contact_id and first is not None and repeat is None  # duplicate: no row
    with db.begin() as conn:
        rows = [_reply(contact_id, "b1", 0), _reply(contact_id, "b2", 1)]
        ids = list(sql.run(conn, sql.insert_outbound, rows).scalars())
        changed = sql.run(
            conn,
            sql.record_sent,
            [
                {"message_id": i, "sid": f"SM{i}", "status": "sent", "attempts": 1, "now": NOW}
                for i in ids
            ],
        ).rowcount
    assert ids == sorted(ids) and len(ids) == 2 and changed == 2
    with db.begin_read() as conn:
        bodies = conn.execute(sql.outbound_for_send, {"message_id": ids[1]}).one()
        inbound = conn.execute(sql.oldest_received, {"contact_id": contact_id}).one()
    assert bodies.body == "b2" and bodies.created_at == NOW and bodies.kind == "reply"
    assert inbound.media_urls == ["https://example.org/a.jpg"]


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it_without_the_values(
    db: Database,
) -> None:
    sql = db.sql
    with db.begin() as conn:
        contact_id = sql.run(conn, sql.upsert_contact, _contact()).scalar_one()
    row = dict(_reply(contact_id), contact_id=contact_id + 1000)  # no such contact
    with pytest.raises(exc.IntegrityError) as raised, db.begin() as conn:
        sql.run(conn, sql.insert_outbound, [row])
    assert "FOREIGN KEY" in str(raised.value)
    assert "+9779800000001" not in str(raised.value) and "Namaste" not in str(raised.value)
    with db.begin_read() as conn:  # nothing of the failed transaction stayed
        assert conn.execute(sql.held_sends, {"contact_id": contact_id, "now": NOW}).all() == []


def test_a_missing_parameter_is_named(db: Database) -> None:
    with pytest.raises(exc.InvalidRequestError, match="'contact_id'"), db.begin() as conn:
        db.sql.run(conn, db.sql.held_sends, {"now": NOW})


def test_what_it_cannot_run_directly_goes_through_sqlalchemy(db: Database) -> None:
    direct = Direct(db.engine.dialect)
    assert direct.plan(db.sql.early_status_sids) is None  # an expanding IN list
    with db.begin() as conn:
        early = db.sql.run(conn, db.sql.early_status_sids, {"sids": ["a", "b"]})
        assert list(early.scalars()) == []
    dialect = psycopg.dialect()
    assert Direct(dialect).plan(Statements(dialect).contact_by_id) is None


def test_one_or_none_when_many_rows_came_back_is_an_error(db: Database) -> None:
    sql = db.sql
    with db.begin() as conn:
        contact_id = sql.run(conn, sql.upsert_contact, _contact()).scalar_one()
        sql.run(conn, sql.insert_inbound, _inbound(contact_id, "SM1"))
        sql.run(conn, sql.insert_inbound, _inbound(contact_id, "SM2"))
        waiting = sql.run(conn, sql.oldest_received, {"contact_id": contact_id})
        with pytest.raises(exc.MultipleResultsFound):
            waiting.scalar_one_or_none()
        with pytest.raises(exc.MultipleResultsFound):
            waiting.scalar_one()
        with pytest.raises(exc.NoResultFound):
            sql.run(conn, sql.oldest_received, {"contact_id": contact_id + 1}).scalar_one()


def test_a_statement_outside_a_transaction_begins_one_as_sqlalchemy_would(db: Database) -> None:
    with db.engine.connect() as conn:
        db.sql.run(conn, db.sql.upsert_contact, _contact())
        assert conn.in_transaction()
        conn.rollback()
    with db.begin_read() as conn:
        assert db.sql.run(conn, db.sql.contact_by_id, {"contact_id": 1}).first() is None
