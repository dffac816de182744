"""What failover costs the send path: CPU per send with it off and on (every route up), and
per send while the route is down and every message moves to the next one. Same run, same
database, rounds alternated so drift hits both sides.

Not the `make run` topology: one process, sends inline (`Outbox.send`) to an adapter that
accepts at once, so the outbox's own work is all that is measured (the database writes of
each send included). SQLite in a temporary directory unless DATABASE_URL is set.

    .venv/bin/python -m bench.failover_overhead --messages 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert

from bench.webhook_load import calibrate
from bot.channel_order import Route
from bot.channels.base import ChannelAbilities, SendResult
from bot.core.messages import Channel, Language, Outbound
from bot.core.status import MessageStatus
from bot.db.migrate import upgrade
from bot.db.models import Contact, utcnow
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings

_numbers = itertools.count(9_800_000_000)


class Accepting:
    """A provider that accepts every message at once."""

    abilities = ChannelAbilities()

    def send(self, message: Outbound) -> SendResult:
        return SendResult(f"SM{uuid.uuid4().hex}", MessageStatus.QUEUED)

    async def send_async(self, message: Outbound) -> SendResult:
        return self.send(message)

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        return []

    async def aclose(self) -> None:
        pass


def _contacts(runtime: Runtime, n: int) -> list[int]:
    now = utcnow()
    rows = [
        {
            "phone": f"+977{next(_numbers)}",
            "simulated": False,
            "channel": "sms",
            "has_sms": True,
            "has_whatsapp": False,
            "last_provider": "sparrow",
            "opted_out": False,
            "version": 0,
            "created_at": now,
            "updated_at": now,
        }
        for _ in range(n)
    ]
    with runtime.db.begin() as conn:
        return list(conn.execute(insert(Contact).returning(Contact.id), rows).scalars())


def _round(runtime: Runtime, contacts: list[int]) -> float:
    """CPU seconds per send for one message to each contact, by Sparrow."""
    ids = []
    with runtime.db.write() as session:
        for contact_id in contacts:
            out = Outbound(Channel.SMS, "+9779800000000", "hello", Language.EN, "manual_reply")
            ids.append(runtime.outbox.enqueue(session, contact_id, out))
    started = time.process_time()
    for message_id in ids:
        runtime.retry_task(message_id)  # claim, load, send, record
    return (time.process_time() - started) / len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"CPU calibration: {calibrate()} ms (lower is faster)")
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        env = {
            "DATABASE_URL": url,
            "VAR_DIR": tmp,
            "SECRET_KEY": "bench-secret-key-0123456789",
            "SPARROW_TOKEN": "t",
            "SPARROW_FROM": "Bench",
            "CHANNEL_ORDER": "sms:sparrow,sms",
        }
        settings = Settings.from_mapping(env)
        runtime = Runtime(settings, huey=make_huey(settings, immediate=True))
        accepting = Accepting()
        runtime.outbox.routes["sparrow"] = accepting
        runtime.outbox.channels = {Channel.SMS: accepting, Channel.WHATSAPP: accepting}
        failover = runtime.outbox.failover
        contacts = _contacts(runtime, args.messages)
        results: dict[str, list[float]] = {"off": [], "on, all up": [], "on, sparrow down": []}
        try:
            # A-B-B-A: the table grows every round, so neither side always runs later.
            for index in range(args.rounds * 2):
                on = index % 4 in (1, 2)
                runtime.outbox.failover = failover if on else None
                results["on, all up" if on else "off"].append(_round(runtime, contacts))
            runtime.outbox.failover = failover
            assert failover is not None
            for _ in range(settings.failover_after):
                failover.failed(Route("sms", "sparrow"), "bench: down")
            for _ in range(args.rounds):
                results["on, sparrow down"].append(_round(runtime, contacts))
        finally:
            runtime.close()
    summary = {k: round(statistics.median(v) * 1e6) for k, v in results.items()}
    print(f"{args.messages} sends per round, {args.rounds} rounds; median CPU µs per send:")
    for name, micros in summary.items():
        print(f"  failover {name:18} {micros:6d} µs")
    if args.json:
        args.json.write_text(json.dumps({"messages": args.messages, "cpu_us": summary}))


if __name__ == "__main__":
    main()
