"""The durable inbox: inbound messages are committed before anyone answers Twilio.

`accept` runs in the webhook (one short transaction); `InboxProcessor.process_contact` runs
in the worker and turns each stored message into outbox rows, one contact at a time, in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from bot import logs
from bot.batching import BatchCalls
from bot.core.handler import Bot
from bot.core.messages import (
    Channel,
    ContactState,
    FlowProgress,
    Inbound,
    Language,
    Outbound,
    Turn,
    unpack_state,
)
from bot.core.status import MessageStatus
from bot.db.database import Database, retryable
from bot.db.models import Message, utcnow
from bot.outbox import DEFAULT_CLAIM, MAX_BODY, SendJob, outbound_row
from bot.personal_data.optouts import phone_hash, release
from flows.schema import Flow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """The stored message, or the earlier copy of a repeated delivery."""

    message_id: int | None
    contact_id: int
    duplicate: bool


def accept(
    db: Database,
    inbound: Inbound,
    simulated: bool = False,
    now: datetime | None = None,
    phone_key: bytes | None = None,
) -> Accepted:
    """Stores an inbound message and its contact in one transaction.

    A repeated `provider_id` (Twilio retrying a delivery) is recognised and stored once.
    With `phone_key`, a new contact whose number has a kept opt-out (its person was erased
    after STOP) starts opted out (bot/personal_data/optouts.py).
    """
    with db.begin() as conn:
        return store_inbound(conn, db, inbound, simulated, now, phone_key)


def store_inbound(
    conn: Connection,
    db: Database,
    inbound: Inbound,
    simulated: bool = False,
    now: datetime | None = None,
    phone_key: bytes | None = None,
) -> Accepted:
    """`accept`'s statements, inside the caller's transaction (`AcceptBatcher` puts many
    webhooks' in one)."""
    now = now or inbound.received_at or utcnow()
    contact_id = db.sql.run(
        conn,
        db.sql.upsert_contact,
        {
            "phone": inbound.sender,
            "phone_hash": phone_hash(phone_key, inbound.sender) if phone_key else "",
            "simulated": simulated,
            "channel": inbound.channel.value,
            "has_sms": inbound.channel is Channel.SMS,
            "has_whatsapp": inbound.channel is Channel.WHATSAPP,
            "profile_name": inbound.profile_name,
            "provider": inbound.route,
            "now": now,
        },
    ).scalar_one()
    message_id = db.sql.run(
        conn,
        db.sql.insert_inbound,
        {
            "contact_id": contact_id,
            "channel": inbound.channel.value,
            "body": inbound.body,
            "provider_sid": inbound.provider_id,
            "provider": inbound.route,
            "num_media": len(inbound.media_urls),
            "media_urls": list(inbound.media_urls) or None,
            "now": now,
        },
    ).scalar_one_or_none()
    return Accepted(message_id, contact_id, duplicate=message_id is None)


@dataclass(frozen=True)
class _Webhook:
    inbound: Inbound
    simulated: bool
    now: datetime


class AcceptBatcher:
    """Stores the webhooks of many request threads together: one transaction per batch.

    In the web process every webhook waits for its own write; one transaction per webhook
    costs a trip through SQLite's write gate (or a WAL flush on PostgreSQL) each, and the
    request threads queue behind each other for it. Here whatever arrived while the last
    batch was being written goes in the next one (a webhook that finds it idle is written
    at once), and each request answers once its batch is committed: durable before the
    200, as before. A batch that fails is written again one webhook at a time, so one bad
    message fails alone (its request answers 503).
    """

    def __init__(self, db: Database, phone_key: bytes | None, max_batch: int = 64) -> None:
        self.db = db
        self.phone_key = phone_key
        self._calls: BatchCalls[_Webhook, Accepted] = BatchCalls(
            self._write, max_batch, name="inbox-writer"
        )

    def accept(self, inbound: Inbound, simulated: bool, now: datetime) -> Accepted:
        """Blocks until the webhook is stored; raises what storing it raised."""
        return self._calls.call(_Webhook(inbound, simulated, now))

    def close(self) -> None:
        self._calls.close()

    def _write(self, batch: list[_Webhook]) -> list[Accepted | BaseException]:
        return store_batch(
            self.db, [(w.inbound, w.simulated, w.now) for w in batch], self.phone_key
        )


def store_batch(
    db: Database,
    batch: list[tuple[Inbound, bool, datetime]],
    phone_key: bytes | None,
) -> list[Accepted | BaseException]:
    """Stores many inbound messages (each with `simulated` and its arrival time) in one
    transaction, on the calling thread's held connection (`Database.begin_held`). When it
    fails, each is written again alone, so one bad message fails alone: one outcome per
    message, in order, an `Accepted` or what storing it raised."""
    try:
        with db.begin_held() as conn:
            return [
                store_inbound(conn, db, inbound, simulated, now, phone_key)
                for inbound, simulated, now in batch
            ]
    except Exception as exc:
        if len(batch) == 1:
            return [exc]
    # Find the one that fails; the others are stored.
    return [store_batch(db, [one], phone_key)[0] for one in batch]


def contact_state(contact: Any, channel: Channel) -> ContactState:
    """The core's view of a contact row."""
    return ContactState(
        phone=contact.phone,
        channel=channel,
        language=Language(contact.language) if contact.language else None,
        opted_out=contact.opted_out,
        last_language=Language(contact.last_language) if contact.last_language else None,
        paused_until=contact.paused_until,
        **unpack_state(contact.state),
    )


def response_row(progress: FlowProgress, contact_id: int) -> dict[str, Any]:
    """The survey_responses row for a session as it stands after a turn."""
    session = progress.session
    updated_at = datetime.fromisoformat(session["updated_at"])
    return {
        "session_id": session["id"],
        "survey_key": session["flow"],
        "kind": session["kind"],
        "version": session["version"],
        "contact_id": contact_id,
        "channel": progress.channel.value,
        "language": progress.language.value,
        "status": session["status"],
        "answers": session["answers"],
        "skipped": session.get("skipped") or None,
        "started_at": datetime.fromisoformat(session["started_at"]),
        "updated_at": updated_at,
        "completed_at": updated_at if session["status"] == "completed" else None,
    }


class _Conflict(Exception):
    """Another worker changed the contact or the message first; read again and retry."""


class InboxProcessor:
    """Runs the core over stored messages and writes its answers to the outbox."""

    def __init__(
        self,
        db: Database,
        bot: Bot,
        send: Callable[[list[SendJob]], None],
        clock: Callable[[], datetime] = utcnow,
        claim: timedelta = DEFAULT_CLAIM,
        phone_key: bytes | None = None,
        across_workers: bool = False,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.bot = bot
        self.claim = claim
        self.owner = owner  # this worker's name on the answers it claims (bot/outbox.py)
        # Other workers handle this contact's turns too (a shared queue): a turn's answers
        # note the contact's older rows still held for sending, to go after them.
        self.across_workers = across_workers
        # START forgets a kept opt-out of an erased person's number (issue 12).
        self.phone_key = phone_key
        self.send = send
        self.clock = clock
        self.committer: GroupCommitter | None = None

    def start_group_commit(self) -> None:
        """From now on, turns from many threads are committed together (worker processes)."""
        self.committer = GroupCommitter(self)

    def close(self) -> None:
        if self.committer is not None:
            self.committer.close()

    def process_contact(self, contact_id: int, limit: int = 100) -> int:
        """Handles the contact's waiting messages oldest first; returns how many it handled.

        Workers may run this for the same contact at once: the contact's `version` and the
        message's status make exactly one of them win each message; the others re-read.
        """
        handled = 0
        sql = self.db.sql
        for _ in range(limit):
            with self.db.begin_read(held=True) as conn:
                contact = sql.run(conn, sql.contact_by_id, {"contact_id": contact_id}).first()
                waiting = sql.run(conn, sql.oldest_received, {"contact_id": contact_id}).all()
            if contact is None or not waiting:
                break
            # A message stored after this read is not missed: it has a task of its own, or
            # the worker's feed offers the contact again (bot/feed.py), or the sweeper finds it.
            message, more = waiting[0], len(waiting) > 1
            state = contact_state(contact, Channel(message.channel))
            inbound = Inbound(
                channel=Channel(message.channel),
                sender=contact.phone,
                body=message.body,
                media_urls=tuple(message.media_urls or ()),
                provider_id=message.provider_sid,
                route=message.provider,
            )
            with logs.context(
                sid=message.provider_sid, message_id=message.id, contact_id=contact_id
            ):
                turn = self.bot.handle(inbound, state)
                if message.provider is not None:
                    # Replies go back through the provider the message came in on.
                    turn = _routed(turn, message.provider)
                try:
                    jobs = self._commit_turn(contact, message.id, turn)
                except _Conflict:
                    log.debug("contact changed under us; reading again")
                    continue
                log.info(
                    "handled: %s, %d replies%s",
                    turn.intent,
                    len(turn.outbounds),
                    f", confidence {turn.confidence:.2f}" if turn.confidence is not None else "",
                )
            handled += 1
            if jobs:
                self.send(jobs)
            if not more:
                break
        return handled

    def start_flow(self, contact_id: int, flow: Flow) -> str:
        """Starts a survey for a contact from outside a conversation (an invitation).

        Returns `started`, or why not: `unknown`, `opted_out`, `busy` (in another flow),
        `done` (already completed this version), `disabled` (no flows configured).
        """
        conversations = self.bot.flows
        if conversations is None:
            return "disabled"
        sql = self.db.sql
        for _ in range(10):
            with self.db.begin_read() as conn:
                contact = sql.run(conn, sql.contact_by_id, {"contact_id": contact_id}).first()
            if contact is None:
                return "unknown"
            if contact.opted_out:
                return "opted_out"
            state = contact_state(contact, Channel(contact.channel))
            if conversations.active(state) is not None:
                return "busy"
            language = state.language or state.last_language or Language.EN
            turn = conversations.begin(state, flow, language, self.clock())
            if turn is None:
                return "done"
            if contact.last_provider is not None and Channel(contact.channel) is Channel.SMS:
                turn = _routed(turn, contact.last_provider)  # the way they last wrote
            try:
                jobs = self._commit_turn(contact, None, turn)
            except _Conflict:
                continue
            if jobs:
                self.send(jobs)
            return "started"
        raise RuntimeError(f"contact {contact_id} kept changing; try again")

    def _commit_turn(self, contact: Any, message_id: int | None, turn: Turn) -> list[SendJob]:
        """Writes one turn atomically. Returns the claimed sends."""
        if self.committer is not None:
            return self.committer.commit(contact, message_id, turn)
        with self.db.begin() as conn:
            return self.write_turn(conn, contact, message_id, turn)

    def write_turn(
        self, conn: Connection, contact: Any, message_id: int | None, turn: Turn
    ) -> list[SendJob]:
        """The statements of one turn, inside the caller's transaction.

        The contact's version is checked first, so a turn that lost a race writes nothing.
        `message_id` is the inbound message handled, or None for a turn we began ourselves.
        """
        now = self.clock()
        sql = self.db.sql
        state = turn.contact
        reply_language = turn.outbounds[0].language.value if turn.outbounds else None
        opted_out = state.opted_out if state is not None else contact.opted_out
        language = state.language if state is not None else contact.language
        stored = state.stored() if state is not None else contact.state
        newly_out = opted_out and not contact.opted_out
        bumped = sql.run(
            conn,
            sql.bump_contact,
            {
                "contact_id": contact.id,
                "version": contact.version,
                "language": language.value if isinstance(language, Language) else language,
                "opted_out": opted_out,
                "opted_out_at": now if newly_out else contact.opted_out_at,
                "last_language": reply_language,
                "state": stored,
                "now": now,
            },
        )
        if bumped.rowcount != 1:
            raise _Conflict
        if message_id is not None:
            claimed = sql.run(
                conn,
                sql.mark_processed,
                {
                    "message_id": message_id,
                    "intent": turn.intent,
                    "confidence": turn.confidence,
                    "language": reply_language,
                    "now": now,
                },
            )
            if claimed.rowcount != 1:
                # Every writer of a message bumps its contact's version: this cannot happen.
                raise RuntimeError(f"message {message_id} was handled without a version change")
        if turn.consent is not None:
            sql.run(
                conn,
                sql.insert_consent,
                {
                    "contact_id": contact.id,
                    "opted_out": turn.consent.opted_out,
                    "reason": turn.consent.reason,
                    "message_id": message_id,
                    "created_at": now,
                },
            )
            if not turn.consent.opted_out and self.phone_key is not None:
                release(conn, self.phone_key, contact.phone)
        if turn.unanswered is not None and message_id is not None:
            sql.run(
                conn,
                sql.insert_unanswered,
                {
                    "message_id": message_id,
                    "contact_id": contact.id,
                    "reason": turn.unanswered.reason,
                    "candidates": [list(c) for c in turn.unanswered.candidates] or None,
                    "status": "open",
                    "created_at": now,
                },
            )
        for progress in turn.progress:
            sql.run(conn, sql.upsert_response, response_row(progress, contact.id))
        if turn.feedback is not None:
            feedback = turn.feedback
            sql.run(
                conn,
                sql.insert_feedback,
                {
                    "reference": feedback.reference,
                    "contact_id": contact.id,
                    "session_id": feedback.session_id,
                    "message_id": message_id,
                    "category": feedback.category,
                    "body": feedback.body,
                    "location": feedback.location,
                    "channel": feedback.channel.value,
                    "language": feedback.language.value,
                    "status": "new",
                    "created_at": now,
                    "updated_at": now,
                },
            )
        if not turn.outbounds:
            return []
        after: tuple[int, ...] = ()
        if self.across_workers and contact.version > 0:  # version 0: no turn before this one
            held = sql.run(conn, sql.held_sends, {"contact_id": contact.id, "now": now})
            after = tuple(held.scalars())
        claimed_until = now + self.claim
        rows = [
            _reply_row(contact.id, out, now, message_id, seq, claimed_until, self.owner)
            for seq, out in enumerate(turn.outbounds)
        ]
        ids = list(sql.run(conn, sql.insert_outbound, rows).scalars())
        jobs = [
            SendJob(i, contact.id, out, claimed_until=claimed_until, after=after)
            for i, out, row in zip(ids, turn.outbounds, rows, strict=True)
            if row["status"] == MessageStatus.DISPATCHING
        ]
        return jobs


def _routed(turn: Turn, route: str) -> Turn:
    """The turn with its replies sent through `route` (the core never names a provider)."""
    outbounds = [replace(out, route=route) if out.route is None else out for out in turn.outbounds]
    return replace(turn, outbounds=outbounds)


def _reply_row(
    contact_id: int,
    out: Outbound,
    now: datetime,
    in_reply_to_id: int | None,
    seq: int,
    claimed_until: datetime,
    owner: str | None = None,
) -> dict[str, Any]:
    """An answer of the bot's, claimed for sending by this worker.

    Nobody can shorten an automatic answer that is too long, and failing the turn would
    fail every turn committed with it: the row is written failed instead (as Twilio would
    fail it, error 21617) and is not sent.
    """
    too_long = len(out.body) > MAX_BODY
    return outbound_row(
        contact_id,
        out.channel.value,
        out.body,
        out.language.value,
        out.kind,
        now,
        status=MessageStatus.FAILED if too_long else MessageStatus.DISPATCHING,
        allow_opted_out=out.allow_opted_out,
        provider=out.route,
        in_reply_to_id=in_reply_to_id,
        seq=seq,
        claimed_until=None if too_long else claimed_until,
        claimed_by=None if too_long else owner,
        error_message=f"longer than {MAX_BODY} characters: not sent" if too_long else None,
    )


@dataclass(frozen=True)
class _Pending:
    contact: Any
    message_id: int | None
    turn: Turn


# How long a batch of turns may keep a waiting webhook out of the SQLite write gate (at
# least: the turn under way is finished first).
HOLD_GATE_FOR = 0.015
# How often a batch's transaction is written again after PostgreSQL broke a deadlock with it.
DEADLOCK_RETRIES = 5
# How long a batch of turns waits for more turns behind its first, on a worker whose handler
# threads are not all taken (`GroupCommitter.wait_for_company`). Each transaction costs a
# trip through the write gate, BEGIN, COMMIT and the WAL pages it rewrites, whatever it
# holds: at 50 turns a second per worker (100 msg/s on `make run`), lone turns made the
# committer a fifth of a worker's CPU. Measured on `make run` against the commit before
# (`bench.compare --bench run --base 8aa4dcc`, five rounds): CPU per message at 100 msg/s
# -18 % to +10 %, median -10 % (the workers 3.36-4.38 against 3.75-4.86 ms), at 200 msg/s
# median -11 %; e2e p50 at 100 msg/s +35-40 ms, the price of the wait. Since 4992903 the wait
# also ends once every thread at work waits for the batch: e2e p50 at 100 msg/s 242-244 ms
# against 289-293 before (`--base fdb1edd`, two rounds).
TURN_LINGER = 0.05


class GroupCommitter:
    """Commits the turns of many handler threads together, one transaction per batch.

    On SQLite one writer runs at a time, so per-turn transactions cap a worker's throughput;
    a batch costs one BEGIN/COMMIT and one trip through the write gate. Each turn is still
    all-or-nothing: a turn that lost a race writes nothing and is read again by its thread.
    """

    def __init__(self, processor: InboxProcessor, max_batch: int = 32) -> None:
        self._processor = processor
        self._calls: BatchCalls[_Pending, list[SendJob]] = BatchCalls(
            self._commit, max_batch, name="turn-committer"
        )
        self._lock = threading.Lock()
        self._committing = 0  # threads waiting in `commit`
        self._working: Callable[[], int] | None = None

    def commit(self, contact: Any, message_id: int | None, turn: Turn) -> list[SendJob]:
        """Blocks until the turn is committed; raises what committing it raised."""
        with self._lock:
            self._committing += 1
        try:
            if self._everyone_waits():
                self._calls.hurry_now()  # no other turn is on its way: waiting gains nothing
            return self._calls.call(_Pending(contact, message_id, turn))
        finally:
            with self._lock:
                self._committing -= 1

    def wait_for_company(
        self, linger: float, hurry: Callable[[], bool], working: Callable[[], int]
    ) -> None:
        """A batch waits up to `linger` seconds for more turns: fewer, larger transactions
        when turns come one at a time, at the price of that wait. It does not wait when the
        caller's `hurry()` says waiting would hold up work (bot/feed.py: contacts queue for a
        handler thread, because every thread is taken), nor once as many threads wait for
        it as `working()` says are handling a contact: no other turn is coming."""
        self._working = working
        self._calls.wait_for_company(linger, lambda: hurry() or self._everyone_waits())

    def _everyone_waits(self) -> bool:
        return self._working is not None and self._committing >= self._working()

    def hurry_now(self) -> None:
        """The batch waiting for company, if one is, is committed now (the feed calls this
        when a contact starts waiting for a thread)."""
        self._calls.hurry_now()

    def close(self) -> None:
        self._calls.close()

    def _commit(self, batch: list[_Pending]) -> list[list[SendJob] | BaseException]:
        """The batch's turns in as few transactions as webhooks allow: once a transaction has
        held the write gate HOLD_GATE_FOR and a webhook waits for it, the turns written so far
        are committed and the gate handed over before the next ones. Measured at 300 msg/s
        with 16 handler threads: whole batches held the gate 28-40 ms, and the webhooks behind
        them waited as long (ack p99 46-64 ms). With 5 ms: ack p99 29-37 ms, but replies
        trailed more at 200 msg/s (e2e p99 2.0 s against 0.9-1.5); with 15 ms: 36-40 ms and
        1.1-1.2 s."""
        db = self._processor.db
        # Contacts' rows are locked in one order by every worker (PostgreSQL): two workers'
        # batches that share contacts wait for each other instead of deadlocking. Measured
        # with `bot run` on PostgreSQL: a contact's messages stored together by the web's
        # spool reach both workers at once, and batches written in arrival order deadlocked.
        order = sorted(range(len(batch)), key=lambda i: batch[i].contact.id)
        ordered = [batch[i] for i in order]
        outcomes: list[list[SendJob] | BaseException] = []
        retries = 0
        while len(outcomes) < len(ordered):
            done = len(outcomes)
            written: list[list[SendJob] | BaseException] = []
            try:
                with db.begin_held() as conn:
                    began = time.monotonic()
                    for item in ordered[done:]:
                        try:
                            written.append(
                                self._processor.write_turn(
                                    conn, item.contact, item.message_id, item.turn
                                )
                            )
                        except _Conflict as conflict:  # this turn alone writes nothing
                            written.append(conflict)
                        if time.monotonic() - began > HOLD_GATE_FOR and db.webhook_waiting():
                            break
            except Exception as exc:  # this transaction's turns and the rest fail together
                if retryable(exc) and retries < DEADLOCK_RETRIES:
                    # With another writer (the web's store of the same contacts): nothing
                    # was written, so the same turns are written again.
                    retries += 1
                    log.info("turns rolled back to break a deadlock; writing them again")
                    time.sleep(0.005 * retries)
                    continue
                outcomes.extend([exc] * (len(ordered) - done))
                break
            outcomes.extend(written)
        in_order: list[list[SendJob] | BaseException] = [[] for _ in batch]
        for position, outcome in zip(order, outcomes, strict=True):
            in_order[position] = outcome
        return in_order


def waiting_contacts(
    db: Database,
    older_than: datetime,
    limit: int,
    now: datetime | None = None,
    lease: timedelta = DEFAULT_CLAIM,
    leases_end: datetime | None = None,
) -> list[int]:
    """Contacts with a message received before `older_than` and still not handled: the task
    that should have handled it was lost (a crash, a failed enqueue) or is still queued
    behind a backlog.

    Their waiting messages are marked handed out for `lease` (`claimed_until`, which an
    inbound row uses for nothing else): a later sweep does not enqueue the same contact
    again before then, so a queue far behind is not flooded with a task per waiting contact
    at every sweep. `leases_end` (default `now`): leases ending before it count as ended.
    """
    now = now or utcnow()
    with db.write() as session:
        # SKIP LOCKED (PostgreSQL): rows a worker is committing are left for the next sweep
        # instead of waited for; waiting on them deadlocked with the workers' group commits.
        messages = (
            select(Message.id)
            .where(Message.direction == "in", Message.status == MessageStatus.RECEIVED)
            .where(Message.created_at < older_than)
            .where(Message.claimed_until.is_(None) | (Message.claimed_until < (leases_end or now)))
            .order_by(Message.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        handed_out = session.execute(
            update(Message)
            .where(Message.id.in_(messages.scalar_subquery()))
            .values(claimed_until=now + lease)
            .returning(Message.contact_id)
        ).scalars()
        return list(dict.fromkeys(handed_out))
