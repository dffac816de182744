"""How far behind the worker is: messages waiting to be handled or sent, and the oldest's age.

A webhook is acknowledged as soon as its message is stored, however far behind the worker is
(the inbox); what waits is the work. Past BACKLOG_MESSAGES waiting or BACKLOG_SECONDS for the
oldest, the service is *behind*: /readyz and the dashboard say so, /metrics has the ages at
every scrape, and broadcasts pause (bot/runtime.py) so that people who wrote are answered
before a broadcast goes on (inbound first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from bot.core.status import MessageStatus
from bot.db.database import Database
from bot.db.models import Message


@dataclass(frozen=True)
class Queue:
    """One queue's waiting messages and the age of the oldest (0 when none wait)."""

    waiting: int
    oldest_seconds: float


@dataclass(frozen=True)
class Backlog:
    """Inbound messages not handled yet, and outbound messages due and not yet sent."""

    inbound: Queue
    outbox: Queue

    def behind(self, messages: int, seconds: float) -> bool:
        """True when either queue has more than `messages` waiting or its oldest waited
        longer than `seconds`."""
        return any(q.waiting > messages or q.oldest_seconds > seconds for q in self.queues)

    @property
    def queues(self) -> tuple[Queue, Queue]:
        return self.inbound, self.outbox

    def summary(self) -> str:
        """For people: "inbound 12 waiting (oldest 3 s), outbox 40 (oldest 1 s)"."""
        return (
            f"inbound {self.inbound.waiting} waiting (oldest {self.inbound.oldest_seconds:.0f} s),"
            f" outbox {self.outbox.waiting} (oldest {self.outbox.oldest_seconds:.0f} s)"
        )


def read_backlog(db: Database, now: datetime) -> Backlog:
    """Counts both queues (index range scans on direction, status, id).

    The outbox's waiting messages are those due (new, or a retry whose time has come) and
    those a worker holds; a retry waiting for its backoff is not late.
    """
    due = Message.next_attempt_at.is_(None) | (Message.next_attempt_at <= now)
    waiting_out = (Message.direction == "out") & (
        ((Message.status == MessageStatus.PENDING) & due)
        | (Message.status == MessageStatus.DISPATCHING)
    )
    waiting_in = (Message.direction == "in") & (Message.status == MessageStatus.RECEIVED)
    with db.begin_read() as conn:
        queues = []
        for waiting in (waiting_in, waiting_out):
            count, oldest_id = conn.execute(
                select(func.count(), func.min(Message.id)).where(waiting)
            ).one()
            oldest = (
                conn.execute(select(Message.created_at).where(Message.id == oldest_id)).scalar()
                if oldest_id is not None
                else None
            )
            age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
            queues.append(Queue(int(count), round(age, 1)))
    return Backlog(queues[0], queues[1])
