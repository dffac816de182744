"""Dashboard load benchmark: the conversation list and a thread with a million messages.

Seeds a fresh database (SQLite in a temporary folder, and PostgreSQL when --database-url names
a server on this machine: a database is created for the run and dropped after) with 50,000
contacts and 1,000,000 messages, generated in time order as production writes them (each
inbound message followed by the bot's reply; a hundred contacts send a tenth of it), with
bulk inserts (executemany on SQLite, COPY on PostgreSQL). Then it times the dashboard's pages
through the application in-process (routing, session, queries, templates: the server's share
of a page load), several repetitions each, and prints p50/p95 per page. Loopback only, and
bounded: --max-seconds stops it.

    .venv/bin/python -m bench.dashboard_load
    .venv/bin/python -m bench.dashboard_load --database-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, bindparam, create_engine, func, insert, select, text, update

from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.db.models import Contact, ContactGroup, Message, UnansweredQuestion
from testkit.load import percentile

FAQ = [
    "meaning", "importance", "steps", "benefits", "strategies", "qualities",
    "who_involved", "mobilizer_role", "nepali_term",
]  # fmt: skip
QUESTIONS = [
    "what is social mobilization",
    "why is community participation important",
    "how do we start a mothers group in our ward",
    "who should be involved in the planning meeting",
    "samajik parichalan bhaneko ke ho",
    "सामाजिक परिचालन भनेको के हो",
    "ward ma pani ko samasya cha",
    "the tap near the school is broken again",
    "when is the next health camp",
    "मेरो गाउँमा बाटो बिग्रिएको छ",
    "hello",
    "thank you",
]
WORDS = ["water", "road", "school", "health", "ward", "tap", "bridge", "loan", "group", "camp"]
REPLY = (
    "Social mobilization brings people together to understand their problems, plan and act "
    "together. Reply MORE for how to start, or HELP for the menu."
)
DELIVERY = ["delivered"] * 16 + ["sent", "read", "failed", "undelivered"]


@dataclass(frozen=True)
class SeedSize:
    """How much to seed."""

    contacts: int = 50_000
    messages: int = 1_000_000
    groups: int = 40
    days: int = 60


def _contacts(size: SeedSize, now: datetime, rng: random.Random) -> list[dict[str, Any]]:
    start = now - timedelta(days=size.days)
    rows = []
    for n in range(size.contacts):
        channel = "whatsapp" if n % 3 else "sms"
        rows.append(
            {
                "id": n + 1,
                "phone": f"+9779{n:09d}",
                "simulated": False,
                "channel": channel,
                "has_sms": channel == "sms",
                "has_whatsapp": channel == "whatsapp",
                "profile_name": f"Member {n}" if channel == "whatsapp" else None,
                "language": "ne" if rng.random() < 0.6 else "en",
                "opted_out": rng.random() < 0.03,
                "version": 0,
                "district": rng.choice(["Kaski", "Lalitpur", "Sindhupalchok", "Dhading"]),
                "ward": str(rng.randint(1, 12)),
                "created_at": start,
                "updated_at": start,
            }
        )
    return rows


def _messages(
    size: SeedSize, now: datetime, rng: random.Random, last_inbound: list[datetime | None]
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(message row, unanswered row or None) pairs in time order; ids are assigned here."""
    pairs = size.messages // 2
    step = timedelta(days=size.days) / pairs
    start = now - timedelta(days=size.days)
    # Skewed senders: a tenth of the traffic comes from a hundred talkative contacts (about
    # a thousand messages each), the rest from everyone alike (about eighteen each).
    talkative = min(100, size.contacts)
    for i in range(pairs):
        if rng.random() < 0.1:
            contact = rng.randrange(talkative) * (size.contacts // talkative) + 1
        else:
            contact = rng.randrange(size.contacts) + 1
        at = start + step * i
        channel = "whatsapp" if (contact - 1) % 3 else "sms"
        question = rng.choice(QUESTIONS)
        if rng.random() < 0.5:
            question = f"{question} {rng.choice(WORDS)} {rng.randint(1, 99)}"
        roll = rng.random()
        intent = f"faq_{rng.choice(FAQ)}" if roll < 0.7 else (None if roll < 0.9 else "greet")
        in_id = 2 * i + 1
        inbound = {
            "id": in_id,
            "contact_id": contact,
            "direction": "in",
            "channel": channel,
            "body": question,
            "provider_sid": f"SM{in_id:032x}",
            "status": "processed",
            "intent": intent,
            "confidence": round(rng.uniform(0.3, 0.99), 3) if intent else None,
            "language": "ne" if rng.random() < 0.6 else "en",
            "num_media": 0,
            "attempts": 0,
            "allow_opted_out": False,
            "created_at": at,
            "updated_at": at,
        }
        last_inbound[contact - 1] = at
        unanswered = None
        if intent is None:
            unanswered = {
                "message_id": in_id,
                "contact_id": contact,
                "reason": "unsure" if roll < 0.8 else "out_of_scope",
                "candidates": [[f"faq_{rng.choice(FAQ)}", 0.41], ["out_of_scope", 0.3]],
                "status": "open",
                "created_at": at,
            }
        yield inbound, unanswered
        status = rng.choice(DELIVERY)
        outbound = {
            "id": in_id + 1,
            "contact_id": contact,
            "direction": "out",
            "channel": channel,
            "body": REPLY,
            "provider_sid": f"SM{in_id + 1:032x}",
            "status": status,
            "kind": "reply",
            "language": inbound["language"],
            "segments": 1,
            "error_code": 30003 if status in ("failed", "undelivered") else None,
            "num_media": 0,
            "attempts": 1,
            "allow_opted_out": False,
            "in_reply_to_id": in_id,
            "seq": 0,
            "created_at": at + timedelta(seconds=1),
            "updated_at": at + timedelta(seconds=3),
        }
        yield outbound, None


MESSAGE_COLUMNS = [
    "id", "contact_id", "direction", "channel", "body", "provider_sid", "status", "kind",
    "intent", "confidence", "language", "num_media", "segments", "error_code", "attempts",
    "allow_opted_out", "in_reply_to_id", "seq", "created_at", "updated_at",
]  # fmt: skip


def _naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def seed(engine: Engine, size: SeedSize, now: datetime, batch: int = 20_000) -> None:
    """Fills an empty, migrated database with `size` worth of conversations."""
    rng = random.Random(20261125)
    contacts = _contacts(size, now, rng)
    last_inbound: list[datetime | None] = [None] * size.contacts
    postgres = engine.dialect.name == "postgresql"
    messages_batch: list[dict[str, Any]] = []
    unanswered: list[dict[str, Any]] = []

    with engine.begin() as conn:
        # Contacts first (messages refer to them); last_inbound_at is filled in at the end.
        conn.execute(insert(Contact), contacts)
        groups = [
            {"contact_id": c["id"], "group_name": f"ward-{(c['id'] * 31) % size.groups + 1}"}
            for c in contacts
        ]
        groups += [
            {"contact_id": c["id"], "group_name": "mothers-group"}
            for c in contacts
            if c["id"] % 9 == 0
        ]
        conn.execute(insert(ContactGroup), groups)

    def flush(conn: Any) -> None:
        if not messages_batch:
            return
        if postgres:
            raw = conn.connection.dbapi_connection
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY messages ({', '.join(MESSAGE_COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in messages_batch:
                    copy.write_row([_naive(row.get(c)) for c in MESSAGE_COLUMNS])
        else:
            conn.execute(
                insert(Message),
                [{c: row.get(c) for c in MESSAGE_COLUMNS} for row in messages_batch],
            )
        messages_batch.clear()

    max_id = {
        "contacts": size.contacts,
        "messages": 2 * (size.messages // 2),
        "unanswered_questions": 0,
    }
    with engine.begin() as conn:
        for message, question in _messages(size, now, rng, last_inbound):
            messages_batch.append(message)
            if question is not None:
                unanswered.append(question)
            if len(messages_batch) >= batch:
                flush(conn)
        flush(conn)
        for first in range(0, len(unanswered), batch):
            conn.execute(insert(UnansweredQuestion), unanswered[first : first + batch])
        max_id["unanswered_questions"] = max(len(unanswered), 1)

        updates = [{"cid": n + 1, "at": at} for n, at in enumerate(last_inbound) if at is not None]
        conn.execute(
            update(Contact)
            .where(Contact.id == bindparam("cid"))
            .values(last_inbound_at=bindparam("at"), updated_at=bindparam("at")),
            updates,
        )
        if postgres:
            # The rows came with their ids: move the sequences past them.
            for name in ("contacts", "messages", "unanswered_questions"):
                conn.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :last)"),
                    {"table": name, "last": max_id[name]},
                )
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


# -- timing -------------------------------------------------------------------------------------

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Timing:
    """One page's figures on one database."""

    database: str
    page: str
    runs: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    rows: int


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        sys.exit(f"--database-url must name a server on this machine, not {host!r}")


def _client(app: Any, runtime: Any, role: str, groups: tuple[str, ...]) -> Any:
    """A test client signed in as a new account of `role` (no password check: not timed)."""
    from werkzeug.security import generate_password_hash

    from bot.db.models import User, UserGroup, utcnow
    from dashboard.accounts import session_token

    secret = generate_password_hash(uuid.uuid4().hex)
    with runtime.db.write() as session:
        user = User(
            email=f"{role}-{uuid.uuid4().hex[:6]}@bench.local",
            role=role,
            password_hash=secret,
            active=True,
            created_at=utcnow(),
        )
        session.add(user)
        session.flush()
        session.add_all(UserGroup(user_id=user.id, group_name=g) for g in groups)
        user_id = user.id
    client = app.test_client()
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = f"{user_id}:{session_token(secret)}"
    return client


def _pages(client: Any, runtime: Any) -> list[tuple[str, str]]:
    """The pages to time; the deep page is reached by following the "older" links."""
    import re

    with runtime.db.read() as session:
        m = Message.__table__.c
        busiest = session.execute(
            select(m.contact_id, func.count().label("n"))
            .group_by(m.contact_id)
            .order_by(func.count().desc())
            .limit(1)
        ).one()
        typical = session.scalar(select(Contact.id).where(Contact.id == 25_000)) or 1
        phone = session.scalar(select(Contact.phone).where(Contact.id == typical)) or "+977"
    path = "/dashboard/conversations"
    for _ in range(19):
        page = client.get(path).get_data(as_text=True)
        link = re.search(r'href="(\?after=[^"]+)"', page)
        assert link, "the list ended before page 20"
        path = "/dashboard/conversations" + link.group(1).replace("&amp;", "&")
    return [
        ("list, first page", "/dashboard/conversations"),
        ("list, page 20 (keyset)", path),
        ("list, channel + language", "/dashboard/conversations?channel=whatsapp&language=ne"),
        ("list, topic", "/dashboard/conversations?topic=faq_steps"),
        ("list, unanswered", "/dashboard/conversations?unanswered=1"),
        ("list, last 7 days", "/dashboard/conversations?since=" + _days_ago(7)),
        ("list, phone digits", f"/dashboard/conversations?phone={phone[-7:]}"),
        ("search, common words", "/dashboard/conversations?q=health+camp"),
        ("search, no match (worst case)", "/dashboard/conversations?q=zqxj+wv"),
        (f"thread, busiest ({busiest.n} msgs)", f"/dashboard/conversations/{busiest.contact_id}"),
        ("thread, typical contact", f"/dashboard/conversations/{typical}"),
    ]


def _days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).date().isoformat()


def measure(url: str, label: str, size: SeedSize, repeat: int, deadline: float) -> list[Timing]:
    """Seeds the database at `url`, then times every page `repeat` times."""
    from bot.app import create_app
    from bot.queue import make_huey
    from bot.runtime import Runtime
    from bot.settings import Settings

    upgrade(url)
    engine = make_engine(url)
    started = time.monotonic()
    seed(engine, size, datetime.now(UTC))
    engine.dispose()
    print(f"{label}: seeded {size.messages:,} messages in {time.monotonic() - started:.0f} s")
    with tempfile.TemporaryDirectory() as var:
        settings = Settings.from_mapping(
            {"DATABASE_URL": url, "VAR_DIR": var, "SECRET_KEY": uuid.uuid4().hex}
        )
        runtime = Runtime(settings, huey=make_huey(settings, immediate=True))
        try:
            app = create_app(settings, runtime)
            coordinator = _client(app, runtime, "coordinator", ())
            mobilizer = _client(app, runtime, "mobilizer", ("ward-7",))
            pages = [(name, path, coordinator) for name, path in _pages(coordinator, runtime)]
            pages.append(("list, mobilizer (one group)", "/dashboard/conversations", mobilizer))
            results = []
            for name, path, client in pages:
                if time.monotonic() > deadline:
                    print("time is up: stopping early")
                    break
                client.get(path)  # warm the caches once, as a browsing person would
                times = []
                rows = 0
                for _ in range(repeat):
                    begin = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - begin) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                    page = response.get_data(as_text=True)
                    rows = page.count('class="row-link"') or page.count('class="msg ')
                results.append(
                    Timing(
                        label,
                        name,
                        repeat,
                        round(percentile(times, 50), 1),
                        round(percentile(times, 95), 1),
                        round(max(times), 1),
                        rows,
                    )
                )
            return results
        finally:
            runtime.close()


def _postgres(admin_url: str) -> tuple[str, Engine, str]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"dashboard_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = admin_url.rsplit("/", 1)[0]
    if base.startswith("postgresql://"):
        base = "postgresql+psycopg://" + base[len("postgresql://") :]
    return f"{base}/{name}", admin, name


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server on this machine (also run)")
    parser.add_argument("--contacts", type=int, default=SeedSize.contacts)
    parser.add_argument("--messages", type=int, default=SeedSize.messages)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=1200)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    size = SeedSize(contacts=args.contacts, messages=args.messages)
    results: list[Timing] = []
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            results += measure(f"sqlite:///{folder}/bot.db", "SQLite", size, args.repeat, deadline)
    if args.database_url:
        _check_loopback(args.database_url)
        url, admin, name = _postgres(args.database_url)
        try:
            results += measure(url, "PostgreSQL", size, args.repeat, deadline)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print()
    print("| database | page | p50 ms | p95 ms | max ms | rows shown |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.database} | {r.page} | {r.p50_ms} | {r.p95_ms} | {r.max_ms} | {r.rows} |")
    slowest = max((r.p95_ms for r in results), default=0.0)
    print(f"\nslowest p95: {slowest} ms (target: every page under 300 ms)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
