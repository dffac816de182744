"""The outbox: every outbound message is a row before it is sent, and every status change
is recorded. Sends are retried on transient errors with capped exponential backoff.

Every outbound row is built by `outbound_row` (the bot's replies in bot/inbox.py, broadcasts'
fan-out, manual replies and answers to feedback through `Outbox.enqueue`): it measures the
text as it will be sent, so the 1,600-character limit and the segment count always describe
the final text.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from bot.batching import BatchThread
from bot.channel_order import Reach, Route
from bot.channels.base import ChannelAdapter, ErrorMeaning, SendError, TransientSendError
from bot.core.messages import Channel, Language, Outbound
from bot.core.segments import count_segments
from bot.core.status import MessageStatus
from bot.db.database import Database
from bot.db.models import ConsentEvent, Contact, Message, MessageStatusEvent, utcnow
from bot.failover import Failover, maybe_delivered
from bot.metrics import SENT
from bot.privacy import scrub_phones

log = logging.getLogger(__name__)

# A worker that claims an outbound message owns it this long (settings: CLAIM_SECONDS);
# after that the sweeper assumes the worker died and hands the message to another.
DEFAULT_CLAIM = timedelta(seconds=120)
# Claims renewed by one statement (Outbox.renew_claims): bounded so the statement stays small.
RENEW_BATCH = 500
# Twilio refuses a longer body (error 21617); so does every path that writes one here.
MAX_BODY = 1600
# How long the worker's sent recorder gathers records after the first (see Outbox.recorder):
# what a send's row says is written at most this much later.
RECORD_LINGER = 0.05

# Statuses only move forward: a late "sent" never overwrites "delivered".
STATUS_RANK: dict[str, int] = {
    MessageStatus.PLANNED: 0,
    MessageStatus.PENDING: 0,
    MessageStatus.DISPATCHING: 1,
    MessageStatus.ACCEPTED: 2,
    MessageStatus.SCHEDULED: 2,
    MessageStatus.QUEUED: 3,
    MessageStatus.SENDING: 4,
    MessageStatus.SENT: 5,
    MessageStatus.FAILED: 6,
    MessageStatus.UNDELIVERED: 6,
    MessageStatus.DELIVERED: 7,
    MessageStatus.READ: 8,
}
FINAL = {MessageStatus.SKIPPED, MessageStatus.CANCELED}
# A row written with one of these is never handed to a channel.
NEVER_SENT = {*FINAL, MessageStatus.FAILED}
# Marks a send taken back from a worker that died mid-call: the provider may have it already.
RECOVERED = "recovered: the worker sending it stopped"
# Marks a send whose call timed out (failover on): the provider may have it already, so it
# is asked (`find_sent`) before the message is sent again or moved to another route.
MAYBE_SENT = "maybe sent: the provider did not answer in time"


def moves_forward(current: str, new: str) -> bool:
    """True when a report of `new` should replace `current`."""
    if current in FINAL or new not in STATUS_RANK:
        return False
    return STATUS_RANK[new] > STATUS_RANK.get(current, -1)


@dataclass(frozen=True)
class SendJob:
    """An outbox row a worker has claimed, with what it needs to send it."""

    message_id: int
    contact_id: int
    outbound: Outbound
    attempts: int = 0
    # Set when a worker died while sending it: ask the provider before sending again.
    recovered_since: datetime | None = None
    # The claim this worker wrote on the row: the row is ours while it still holds this
    # value (bot/sender.py renews it, compare-and-set, before it runs out).
    claimed_until: datetime | None = None
    # The contact's older rows some worker held for sending when this one was written (with
    # a shared queue only): this one goes after them (bot/sender.py).
    after: tuple[int, ...] = ()


class MessageTooLong(ValueError):
    """The text, as it would be sent, is longer than MAX_BODY characters."""


def outbound_row(
    contact_id: int,
    channel: str,
    body: str,
    language: str | None,
    kind: str,
    now: datetime,
    *,
    status: MessageStatus,
    segments: int | None = None,
    allow_opted_out: bool = False,
    provider: str | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """The `messages` row of one outbound message: the only place outbound rows are built.

    `body` is the final text. It is measured here: a row to be sent that is longer than
    MAX_BODY raises MessageTooLong, and `segments` (what the send costs) is counted from it
    unless the caller priced the route itself (a broadcast's WhatsApp message costs one
    unit, a skipped one nothing). `columns` are the row's other columns (in_reply_to_id,
    seq, claimed_until, broadcast_run_id, extra, error_message...); rows inserted together
    must name the same ones. `provider` is the route it goes out by (None: the channel's
    default adapter).

    Raises:
        MessageTooLong: the text is longer than MAX_BODY characters and `status` is not one
            that is never sent (failed, skipped, canceled).
    """
    if len(body) > MAX_BODY and status not in NEVER_SENT:
        raise MessageTooLong(f"the message is longer than {MAX_BODY} characters ({len(body)})")
    return {
        "contact_id": contact_id,
        "direction": "out",
        "channel": channel,
        "body": body,
        "status": status,
        "kind": kind,
        "language": language,
        "segments": count_segments(body).segments if segments is None else segments,
        "allow_opted_out": allow_opted_out,
        "provider": provider,
        "attempts": 0,
        "num_media": 0,
        "created_at": now,
        "updated_at": now,
        **columns,
    }


@dataclass(frozen=True)
class SentRecord:
    """The provider accepted a message: its SID and status, to be written down."""

    message_id: int
    attempts: int
    sid: str
    status: str


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter."""

    max_attempts: int = 6
    base_seconds: float = 2.0
    cap_seconds: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt + 1`."""
        raw = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))
        return float(raw * random.uniform(0.8, 1.2))


class Outbox:
    """Sends claimed outbox rows through the right channel and records what happened."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[Channel, ChannelAdapter],
        schedule_retry: Callable[[int, float], None],
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        batch_records: bool = False,
        claim: timedelta = DEFAULT_CLAIM,
        routes: Mapping[str, ChannelAdapter] | None = None,
        failover: Failover | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        # This worker's name on the rows it claims (`bot worker --name`; see
        # reclaim_dead_claims): None for an unnamed worker.
        self.owner = owner
        # Routes' shared health and CHANNEL_ORDER (bot/failover.py): while a message's route
        # is down it goes by the contact's next route. None: no failover.
        self.failover = failover
        # Providers besides each channel's default adapter, by name ("sparrow"): a message
        # whose row names one goes out through it.
        self.routes = dict(routes or {})
        self.claim_for = claim
        # At hundreds of messages per second one small write transaction per send is what
        # limits SQLite (one writer at a time); a batch every few milliseconds is not. The
        # cost: a worker killed in that interval has sent messages it has not recorded, and
        # the sweeper takes them back when their claim ends and, on a channel that can look
        # up what it sent (`find_sent`), adopts them instead of sending again. A failed
        # batch likewise leaves its rows claimed for the sweeper. A batch gathers for
        # RECORD_LINGER after its first record, so that the thread wakes a few times a second
        # rather than once per send.
        self.recorder: BatchThread[SentRecord] | None = (
            BatchThread(
                self._record_in_recorder,
                max_batch=200,
                name="sent-recorder",
                linger=RECORD_LINGER,
            )
            if batch_records
            else None
        )
        self.channels = channels
        self.schedule_retry = schedule_retry
        self.policy = policy or RetryPolicy()
        self.clock = clock

    def enqueue(self, session: Session, contact_id: int, outbound: Outbound, **columns: Any) -> int:
        """Writes one message due now, in the caller's transaction; returns its id.

        For messages people write (manual replies, answers to feedback). After the commit,
        enqueue its send task; if that is lost, the worker's sweeper finds the row and sends it.

        Raises:
            MessageTooLong: `outbound.body` is longer than MAX_BODY characters.
        """
        row = outbound_row(
            contact_id,
            outbound.channel.value,
            outbound.body,
            outbound.language.value,
            outbound.kind,
            self.clock(),
            status=MessageStatus.PENDING,
            allow_opted_out=outbound.allow_opted_out,
            provider=self._route_for(session, contact_id, outbound),
            **columns,
        )
        return int(session.execute(self.db.sql.insert_outbound, row).scalar_one())

    @staticmethod
    def _route_for(session: Session, contact_id: int, outbound: Outbound) -> str | None:
        """The outbound's provider, else (SMS) the one the contact last wrote through."""
        if outbound.route is not None or outbound.channel is not Channel.SMS:
            return outbound.route
        contact = session.get(Contact, contact_id)  # the caller has it loaded: no query
        return contact.last_provider if contact is not None else None

    def claim(self, message_id: int) -> bool:
        """Takes a pending message whose time has come; False if another worker has it."""
        now = self.clock()
        with self.db.write() as session:
            result = session.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == MessageStatus.PENDING)
                .where((Message.next_attempt_at.is_(None)) | (Message.next_attempt_at <= now))
                .values(
                    status=MessageStatus.DISPATCHING,
                    claimed_until=now + self.claim_for,
                    claimed_by=self.owner,
                    updated_at=now,
                )
            )
            claimed: int = result.rowcount  # type: ignore[attr-defined]
            return claimed == 1

    def load(self, message_id: int) -> SendJob | None:
        """Reads a claimed message back (retries, recovered sends); None if not ours to send."""
        with self.db.begin_read() as conn:
            row = conn.execute(self.db.sql.outbound_for_send, {"message_id": message_id}).first()
        if row is None or row.status != MessageStatus.DISPATCHING:
            return None
        if row.opted_out and not row.allow_opted_out:
            # Opt-out is checked at send time: a STOP since this was queued wins.
            self._finish(message_id, MessageStatus.SKIPPED, error_message="contact opted out")
            return None
        outbound = Outbound(
            channel=Channel(row.channel),
            to=row.phone,
            body=row.body,
            language=Language(row.language or "en"),
            kind=row.kind or "reply",
            allow_opted_out=row.allow_opted_out,
            content_sid=(row.extra or {}).get("content_sid"),
            content_variables=(row.extra or {}).get("content_variables"),
            route=row.provider,
        )
        recovered = row.error_message in (RECOVERED, MAYBE_SENT)
        # Clocks differ a little between us and the provider: look a minute further back.
        since = row.created_at - timedelta(minutes=1) if recovered else None
        return SendJob(message_id, row.contact_id, outbound, row.attempts, since, row.claimed_until)

    def renew_claims(self, claims: Mapping[int, datetime]) -> dict[int, datetime]:
        """Extends this worker's claims on rows it still holds (message id -> the claim it
        wrote); returns the new claim of each row still ours.

        A send waiting in the worker's own queue, or under way, keeps its row this way: the
        sweeper takes a row back only when its claim runs out, so a long local queue is never
        mistaken for a dead worker. A row whose claim changed meanwhile (the sweeper took it
        back while this worker stalled; another worker may have it now) is not renewed, and
        its send must not start.
        """
        if not claims:
            return {}
        now = self.clock()
        until = now + self.claim_for
        renewed: dict[int, datetime] = {}
        items = sorted(claims.items())
        with self.db.begin() as conn:
            # One statement per RENEW_BATCH rows, compare-and-set on (id, claim) pairs. The
            # rows are locked in id order (the subquery's ORDER BY ... FOR UPDATE), as the
            # recorder writes them: two writers of the same rows never deadlock.
            for start in range(0, len(items), RENEW_BATCH):
                chunk = items[start : start + RENEW_BATCH]
                ours = (
                    select(Message.id)
                    .where(tuple_(Message.id, Message.claimed_until).in_(chunk))
                    .where(Message.status == MessageStatus.DISPATCHING)
                    .order_by(Message.id)
                    .with_for_update()
                )
                ids = conn.execute(
                    update(Message)
                    .where(Message.id.in_(ours.scalar_subquery()))
                    .values(claimed_until=until)
                    .returning(Message.id)
                ).scalars()
                renewed.update((message_id, until) for message_id in ids)
        return renewed

    def still_held(self, message_ids: Sequence[int]) -> list[int]:
        """Which of these rows a worker still holds for sending: dispatching, under a claim
        that has not run out (one whose worker died is let go when its claim ends)."""
        with self.db.begin_read() as conn:
            held = conn.execute(
                self.db.sql.still_held, {"ids": list(message_ids), "now": self.clock()}
            )
            return list(held.scalars())

    def send(self, job: SendJob) -> None:
        """Hands a claimed message to its channel and records the outcome."""
        routed = self._adapter(job)
        if routed is None:
            return
        job, adapter = routed
        try:
            if job.recovered_since is not None and self._adopt(adapter, job):
                return
            result = adapter.send(job.outbound)
        except SendError as exc:
            self._failed(job, exc)
            return
        SENT.labels(job.outbound.channel.value, "accepted").inc()
        self._healthy(job)
        self._record_sent(job.message_id, job.attempts + 1, result.provider_id, result.status)

    async def send_async(self, job: SendJob) -> None:
        """`send` for the worker's event loop: many provider calls overlap on one thread."""
        if self.failover is not None and self.failover.down():
            # Moving a message to another route reads and writes rows: off the loop.
            routed = await asyncio.to_thread(self._adapter, job)
        else:
            routed = self._adapter(job)
        if routed is None:
            return
        job, adapter = routed
        try:
            if job.recovered_since is not None and await asyncio.to_thread(
                self._adopt, adapter, job
            ):
                return
            result = await adapter.send_async(job.outbound)
        except SendError as exc:
            self._failed(job, exc)
            return
        SENT.labels(job.outbound.channel.value, "accepted").inc()
        self._healthy(job)
        self._record_sent(job.message_id, job.attempts + 1, result.provider_id, result.status)

    def _adopt(self, adapter: ChannelAdapter, job: SendJob) -> bool:
        """After a worker died mid-send: if the provider already has this message, record its
        SID instead of sending it twice. Raises SendError when the provider cannot be asked."""
        if not adapter.abilities.find_sent or job.recovered_since is None:
            return False
        candidates = adapter.find_sent(job.outbound, job.recovered_since)
        if not candidates:
            return False
        with self.db.read() as session:
            known = set(
                session.scalars(
                    select(Message.provider_sid).where(
                        Message.provider_sid.in_([c.provider_id for c in candidates])
                    )
                )
            )
        for candidate in candidates:
            if candidate.provider_id not in known:
                log.warning(
                    "message %s had reached the provider before its worker stopped: %s",
                    job.message_id,
                    candidate.provider_id,
                )
                SENT.labels(job.outbound.channel.value, "adopted").inc()
                self._record_sent(
                    job.message_id, job.attempts + 1, candidate.provider_id, candidate.status
                )
                return True
        return False

    def _adapter(self, job: SendJob) -> tuple[SendJob, ChannelAdapter] | None:
        """The job (moved to another route while its own is down) and its adapter; None
        when it is not to be sent now (deferred until its route comes back, adopted, or
        failed for want of an adapter)."""
        if self.failover is not None:
            moved = self._failover(job, self.failover)
            if moved is None:
                return None
            job = moved
        adapter = self._lookup(job)
        return None if adapter is None else (job, adapter)

    # -- failover (bot/failover.py) --------------------------------------------------------

    def _route_of(self, job: SendJob, failover: Failover) -> Route:
        """The job's route as the health table knows it ("sms:sparrow", "whatsapp")."""
        written = Route(job.outbound.channel.value, job.outbound.route)
        return failover.routes.canonical(written) or Route(written.channel)

    def _failover(self, job: SendJob, failover: Failover) -> SendJob | None:
        """While the job's route is down: the job moved to the contact's next route that is
        up, or None (deferred to the route's next probe, or adopted).

        One row is one send: a message moves only if it certainly did not reach the down
        provider (never tried, or its last failure was definite), or that provider, asked
        (`find_sent`), says it does not have it."""
        route = self._route_of(job, failover)
        if failover.usable(route):  # up, or this send is its probe
            return job
        if job.recovered_since is not None:
            adapter = self._lookup(job)
            if adapter is None:
                return None
            try:
                if not adapter.abilities.find_sent:
                    raise SendError(f"{route} cannot be asked whether it has the message")
                if self._adopt(adapter, job):
                    return None
            except SendError:
                self._defer(job, failover.next_probe(route), MAYBE_SENT)
                return None
            job = replace(job, recovered_since=None)  # it does not have it
        with self.db.read() as session:
            contact = session.get(Contact, job.contact_id)
            extra = dict(
                session.scalar(select(Message.extra).where(Message.id == job.message_id)) or {}
            )
            reach = Reach.of(contact) if contact is not None else None
        template = extra.get("template") or job.outbound.content_sid
        now = self.clock()
        plan = (
            failover.routes.plan(reach, now, first=route, template=bool(template)) if reach else []
        )
        target = next((r for r in plan if r != route and failover.health(r).up), None)
        if target is None or reach is None:
            why = f"{route} is down and no other route in CHANNEL_ORDER reaches the contact"
            self._defer(job, failover.next_probe(route), why)
            return None
        body = job.outbound.body
        extra.pop("content_sid", None)
        extra.pop("content_variables", None)
        content_sid = None
        if target.channel == "whatsapp" and not reach.window_open(now):
            content_sid = template
            extra.update(content_sid=template, content_variables={"1": body})
        with self.db.write() as session:
            moved = session.execute(
                update(Message)
                .where(Message.id == job.message_id, Message.status == MessageStatus.DISPATCHING)
                .values(
                    channel=target.channel,
                    provider=target.provider,
                    segments=1 if target.channel == "whatsapp" else count_segments(body).segments,
                    extra=extra or None,
                    updated_at=now,
                )
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return None  # no longer ours to send
        failover.switched(route, target, job.message_id)
        outbound = replace(
            job.outbound,
            channel=Channel(target.channel),
            route=target.provider,
            content_sid=content_sid,
            content_variables=extra.get("content_variables") if content_sid else None,
        )
        return replace(job, outbound=outbound)

    def _defer(self, job: SendJob, until: datetime, why: str) -> None:
        """Puts a claimed message back to wait for `until` without counting an attempt."""
        now = self.clock()
        until = max(until, now)
        with self.db.write() as session:
            session.execute(
                update(Message)
                .where(Message.id == job.message_id, Message.status == MessageStatus.DISPATCHING)
                .values(
                    status=MessageStatus.PENDING,
                    next_attempt_at=until,
                    claimed_until=None,
                    # A message that may have reached the provider stays marked so.
                    error_message=MAYBE_SENT if job.recovered_since is not None else why[:500],
                    updated_at=now,
                )
            )
        self.schedule_retry(job.message_id, (until - now).total_seconds())

    def _healthy(self, job: SendJob) -> None:
        if self.failover is not None:
            self.failover.succeeded(self._route_of(job, self.failover))

    def _lookup(self, job: SendJob) -> ChannelAdapter | None:
        route = job.outbound.route
        if route is not None:
            routed = self.routes.get(route)
            if routed is not None:
                return routed
            # The provider is no longer configured: the channel's default adapter is the
            # best way left (and the console in development).
            log.warning("message %s: provider %r is not configured", job.message_id, route)
        adapter = self.channels.get(job.outbound.channel)
        if adapter is None:
            self._finish(
                job.message_id,
                MessageStatus.FAILED,
                error_message=f"no adapter for {job.outbound.channel}",
            )
        return adapter

    def _failed(self, job: SendJob, exc: SendError) -> None:
        """Retries a transient failure later (up to the cap); gives up on a permanent one."""
        message_id, attempts = job.message_id, job.attempts + 1
        transient = isinstance(exc, TransientSendError)
        SENT.labels(job.outbound.channel.value, "retry" if transient else "failed").inc()
        # Failover: a transient failure (the provider or the way to it is down) counts against
        # the route; any verdict on the message itself shows the provider is there.
        # A send that may have reached the provider (the adapter says so), or a send taken
        # back from a dead worker, keeps that mark: its next attempt asks the provider first
        # (find_sent) instead of sending it a second time, and failover does not move it.
        maybe_sent = transient and (job.recovered_since is not None or maybe_delivered(exc))
        route_down = False
        if self.failover is not None:
            route = self._route_of(job, self.failover)
            if not transient:
                self.failover.succeeded(route)
            elif exc.provider_down:  # an adapter may say "busy, not down"
                route_down = not self.failover.failed(route, scrub_phones(str(exc))).up
        if isinstance(exc, TransientSendError) and attempts < self.policy.max_attempts:
            # Its route is down and it certainly did not get through: the next route, now.
            delay = 0.0 if route_down and not maybe_sent else self.policy.delay(attempts)
            self._reschedule(
                message_id, attempts, delay, SendError(MAYBE_SENT) if maybe_sent else exc
            )
            self.schedule_retry(message_id, delay)
            return
        if isinstance(exc, TransientSendError):
            # A provider's error text can quote the number: logs get it masked.
            log.warning(
                "message %s failed after %s attempts: %s",
                message_id,
                attempts,
                scrub_phones(str(exc)),
            )
        self._finish(message_id, MessageStatus.FAILED, attempts, exc.code, str(exc))
        if exc.meaning is ErrorMeaning.OPTED_OUT:  # the provider's error table says so
            reason = opt_out_reason(exc.provider, exc.code)
            opt_out_contact(self.db, job.contact_id, reason, message_id, self.clock())

    def _reschedule(self, message_id: int, attempts: int, delay: float, exc: Exception) -> None:
        now = self.clock()
        with self.db.write() as session:
            session.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == MessageStatus.DISPATCHING)
                .values(
                    status=MessageStatus.PENDING,
                    attempts=attempts,
                    next_attempt_at=now + timedelta(seconds=delay),
                    claimed_until=None,
                    error_message=str(exc)[:500],
                    updated_at=now,
                )
            )

    def _finish(
        self,
        message_id: int,
        status: MessageStatus,
        attempts: int | None = None,
        code: int | None = None,
        error_message: str | None = None,
    ) -> None:
        values: dict[str, object] = {
            "status": status,
            "claimed_until": None,
            "error_code": code,
            "error_message": (error_message or "")[:500] or None,
            "updated_at": self.clock(),
        }
        if attempts is not None:
            values["attempts"] = attempts
        with self.db.write() as session:
            session.execute(update(Message).where(Message.id == message_id).values(**values))

    def _record_sent(self, message_id: int, attempts: int, sid: str, status: str) -> None:
        record = SentRecord(message_id, attempts, sid, status)
        if self.recorder is not None:
            self.recorder.put(record)
        else:
            self.record_batch([record])

    def _record_in_recorder(self, records: list[SentRecord]) -> None:
        self.record_batch(records, held=True)  # the recorder thread keeps its connection

    def record_batch(self, records: list[SentRecord], held: bool = False) -> None:
        """Records what the provider said for many sends in one transaction (`held`: on
        this thread's own connection, Database.begin_held)."""
        now = self.clock()
        sql = self.db.sql
        with self.db.begin_held() if held else self.db.begin() as conn:
            sql.run(
                conn,
                sql.record_sent,
                [
                    {
                        "message_id": r.message_id,
                        "sid": r.sid,
                        "status": r.status if r.status in STATUS_RANK else MessageStatus.QUEUED,
                        "attempts": r.attempts,
                        "now": now,
                    }
                    for r in sorted(records, key=lambda r: r.message_id)  # lock order
                ],
            )
            early = set(
                conn.execute(sql.early_status_sids, {"sids": [r.sid for r in records]}).scalars()
            )
        for record in records:
            if record.sid in early:
                self._apply_early_reports(record.message_id, record.sid)

    def _apply_early_reports(self, message_id: int, sid: str) -> None:
        """A status callback beat us to recording the SID: apply what it said now."""
        with self.db.write() as session:
            early = session.scalars(
                select(MessageStatusEvent)
                .where(
                    MessageStatusEvent.provider_sid == sid, MessageStatusEvent.message_id.is_(None)
                )
                .order_by(MessageStatusEvent.id)
            ).all()
            row = session.get(Message, message_id)
            assert row is not None
            for event in early:
                event.message_id = message_id
                if moves_forward(row.status, event.status):
                    row.status = event.status
                    row.error_code = event.error_code
                    event.applied = True

    def apply_status(
        self,
        sid: str,
        status: str,
        error_code: int | None,
        meaning: ErrorMeaning | None = None,
        provider: str | None = None,
    ) -> str:
        """Records a status callback. Returns "applied", "ignored" or "unknown".

        `status` is ours (the provider's webhook mapped it: `Provider.status`); `meaning` is
        what the provider's `error_code` means (`Provider.meaning`), `provider` its name.
        Out-of-order reports never move a message backwards; every report is kept.
        """
        status = status.lower()
        now = self.clock()
        opt_out: tuple[int, int] | None = None
        with self.db.write() as session:
            row = session.scalars(
                select(Message)
                .where(Message.provider_sid == sid, Message.direction == "out")
                .with_for_update()
            ).first()
            if row is None:
                session.add(
                    MessageStatusEvent(
                        message_id=None,
                        provider_sid=sid,
                        status=status,
                        applied=False,
                        error_code=error_code,
                        created_at=now,
                    )
                )
                return "unknown"
            applied = moves_forward(row.status, status)
            session.add(
                MessageStatusEvent(
                    message_id=row.id,
                    provider_sid=sid,
                    status=status,
                    applied=applied,
                    error_code=error_code,
                    created_at=now,
                )
            )
            if applied:
                row.status = status
                row.error_code = error_code
                row.updated_at = now
            if meaning is ErrorMeaning.OPTED_OUT:
                opt_out = (row.contact_id, row.id)
            route = Route(row.channel, row.provider)
        if self.failover is not None:
            self._route_health_from_report(route, status, error_code, meaning, provider)
        if opt_out is not None:
            reason = opt_out_reason(provider, error_code)
            opt_out_contact(self.db, opt_out[0], reason, opt_out[1], now)
        return "applied" if applied else "ignored"

    def _route_health_from_report(
        self,
        written: Route,
        status: str,
        error_code: int | None,
        meaning: ErrorMeaning | None,
        provider: str | None,
    ) -> None:
        """A delivery report is evidence about its route too. A platform that accepts sends
        and then fails them all (WhatsApp blocked in a country: Twilio answers 201, then
        reports 63012) looks up at send time: its reports count against the route, as the
        send's own failures do, so failover moves the next sends to the contact's next
        route; a delivered or read report shows it works. Any other report (one bad number,
        one refused message) says nothing about the route."""
        failover = self.failover
        assert failover is not None
        route = failover.routes.canonical(written) or Route(written.channel)
        if meaning is ErrorMeaning.UNREACHABLE:
            failover.failed(route, f"delivery report: {provider or 'provider'} error {error_code}")
        elif status in (MessageStatus.DELIVERED, MessageStatus.READ) and failover.health(route).up:
            # Resets a run of failures; a route already down comes back only by its probe (a
            # late report of a message sent before the outage says nothing about now).
            failover.succeeded(route)


def opt_out_reason(provider: str | None, code: int | None) -> str:
    """The consent log's reason for an opt-out a provider reported ("twilio_21610")."""
    return f"{provider or 'provider'}_{code if code is not None else 'opt_out'}"


def opt_out_contact(
    db: Database, contact_id: int, reason: str, message_id: int | None, now: datetime
) -> None:
    """Marks a contact opted out (if not already) and logs it in the consent log."""
    with db.write() as session:
        result = session.execute(
            update(Contact)
            .where(Contact.id == contact_id, Contact.opted_out.is_(False))
            .values(opted_out=True, opted_out_at=now, version=Contact.version + 1, updated_at=now)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            session.add(
                ConsentEvent(
                    contact_id=contact_id,
                    opted_out=True,
                    reason=reason,
                    message_id=message_id,
                    created_at=now,
                )
            )


def due_messages(
    db: Database,
    now: datetime,
    limit: int,
    lease: timedelta = DEFAULT_CLAIM,
    leases_end: datetime | None = None,
) -> list[int]:
    """Outbound messages waiting to be sent whose time has come (new or to retry), handed
    out for `lease`: their ids, to be given to the queue.

    A pending row's `claimed_until` says until when a task handed out for it may still be
    waiting in the queue: a row handed out is not handed out again before that, so a queue
    far behind is not flooded with a second (third...) task per row at every sweep. The
    worker's claim (`Outbox.claim`) overwrites it. `leases_end` (default `now`): leases
    ending before it count as ended (a worker replacing a dead one hands everything out).
    """
    with db.write() as session:
        due = (
            select(Message.id)
            .where(Message.direction == "out", Message.status == MessageStatus.PENDING)
            .where((Message.next_attempt_at.is_(None)) | (Message.next_attempt_at <= now))
            .where(Message.claimed_until.is_(None) | (Message.claimed_until < (leases_end or now)))
            .order_by(Message.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # never wait for (or deadlock with) a worker
        )
        return list(
            session.execute(
                update(Message)
                .where(Message.id.in_(due.scalar_subquery()))
                .values(claimed_until=now + lease)
                .returning(Message.id)
            ).scalars()
        )


def reclaim_dead_claims(
    db: Database,
    now: datetime,
    claimed_until: datetime | None = None,
    lease: timedelta = DEFAULT_CLAIM,
    owner: str | None = None,
) -> list[int]:
    """Takes back sends whose worker died holding them (its claim ran out before
    `claimed_until`, by default `now`), handed out for `lease` (see `due_messages`).
    With `owner` (a worker restarted under its dead predecessor's name, beside live
    workers, before it claims anything itself) every row claimed under that name is taken
    back, whatever its claim; others' rows when their claims run out (before `now`).

    The send may or may not have reached the provider. Marked RECOVERED, it goes back to a
    worker, which first asks the provider (a channel with `find_sent`) and adopts the message
    it finds instead of sending it twice; a channel that cannot be asked sends it again.
    A live worker renews the claims of the sends it holds (bot/sender.py), however long its
    own queue: only a dead (or stalled past its claim) worker's rows are taken back.
    """
    ended = Message.claimed_until < (claimed_until or now)
    if owner is not None:
        ended = (Message.claimed_until < now) | (Message.claimed_by == owner)
    dead = (
        select(Message.id)
        .where(Message.direction == "out")
        .where(Message.status == MessageStatus.DISPATCHING)
        .where(ended)
        .with_for_update(skip_locked=True)  # a row being renewed or recorded is alive
    )
    with db.write() as session:
        return list(
            session.execute(
                update(Message)
                .where(Message.id.in_(dead.scalar_subquery()))
                .values(
                    status=MessageStatus.PENDING,
                    claimed_until=now + lease,
                    claimed_by=None,
                    next_attempt_at=None,
                    error_message=RECOVERED,
                    updated_at=now,
                )
                .returning(Message.id)
            ).scalars()
        )
