"""Wires settings into the pieces every process uses: database, queue, channels, core.

The web process uses `accept` (store, then enqueue); the worker runs the registered tasks
and the sweeper, which re-enqueues whatever a crash or a lost task left behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from huey import Huey
from huey.api import TaskWrapper

from bot.backlog import read_backlog
from bot.batching import BatchThread
from bot.broadcasts.desk import SmsDesk
from bot.broadcasts.fanout import plan_run, stalled_runs
from bot.broadcasts.pacing import Pacer
from bot.broadcasts.ports import BroadcastPorts
from bot.broadcasts.sending import send_slice
from bot.channel_order import Routes
from bot.channels import registry
from bot.channels.base import ChannelAdapter
from bot.channels.console import ConsoleChannel
from bot.core.content import Content
from bot.core.conversations import Conversations
from bot.core.handler import Bot
from bot.core.messages import Channel, Inbound
from bot.db.database import Database
from bot.db.models import utcnow
from bot.doorbell import Doorbell, Ringer, doorbell_folder
from bot.failover import Failover
from bot.feed import InboxFeed
from bot.inbox import (
    TURN_LINGER,
    AcceptBatcher,
    Accepted,
    InboxProcessor,
    accept,
    store_batch,
    waiting_contacts,
)
from bot.metrics import INBOUND, timed_nlu
from bot.outbox import Outbox, RetryPolicy, SendJob, due_messages, reclaim_dead_claims
from bot.queue import SqliteQueueStorage, make_huey
from bot.sender import AsyncSender
from bot.settings import Settings, SettingsError
from bot.spool import InboundSpool, spool_folder
from bot.surveys import sync_versions
from flows.answers import Vocabulary
from flows.engine import Kit
from flows.schema import FlowFiles
from nlu.catalogue import Catalogue
from nlu.client import RasaClient

log = logging.getLogger(__name__)
_ENQUEUER_LOCK = threading.Lock()
# Tasks of a higher priority are handed out first by the embedded queue (inbound first).
INBOUND_PRIORITY = 100
SEND_PRIORITY = 50
# A broadcast slice that finds the worker behind tries again this much later.
BEHIND_PAUSE = timedelta(seconds=10)
# Messages of one contact a feed thread handles before the contacts waiting behind it.
FEED_TURNS = 20


def default_channels(settings: Settings) -> dict[Channel, ChannelAdapter]:
    """Each channel's default adapter: that of the enabled provider marked `default` that
    carries it (Twilio for SMS and WhatsApp when configured), else the console."""
    console = ConsoleChannel(show_bodies=settings.log_message_bodies)
    channels: dict[Channel, ChannelAdapter] = {ch: console for ch in Channel}
    for provider in registry.enabled(settings):
        if provider.default:
            channels.update(provider.make_senders(settings))
    return channels


def default_routes(settings: Settings) -> dict[str, ChannelAdapter]:
    """The enabled providers that are not a channel's default (Sparrow), by the name messages
    and contacts record (`messages.provider`)."""
    routes: dict[str, ChannelAdapter] = {}
    for provider in registry.enabled(settings):
        if not provider.default:
            (adapter,) = provider.make_senders(settings).values()  # a route carries one channel
            routes[provider.name] = adapter
    return routes


def installed_routes(settings: Settings) -> Routes:
    """CHANNEL_ORDER and the providers this installation has (bot/channel_order.py).

    Raises:
        SettingsError: CHANNEL_ORDER names a provider that is not installed.
    """
    installed = registry.providers()
    routes = Routes(
        settings.channel_order,
        named=frozenset(p.name for p in registry.enabled(settings) if not p.default),
        defaults=frozenset(p.name for p in installed if p.default),
        known=True,
    )
    names = {p.name for p in installed}
    for route in routes.unknown():
        if route.provider not in names:
            raise SettingsError(
                f"CHANNEL_ORDER names {route}, but no provider {route.provider!r} is installed "
                f"(installed: {', '.join(sorted(names)) or 'none'})"
            )
        log.warning("CHANNEL_ORDER: %s is not configured here; it is passed over", route)
    return routes


class BroadcastQueue:
    """The broadcasts' task port (bot.broadcasts.ports.BroadcastTasks) on Huey's tasks.

    A failed enqueue is logged, never raised: the run stays in the table and the sweeper
    hands it to a worker again.
    """

    def __init__(self, plan: TaskWrapper, send: TaskWrapper, clock: Callable[[], datetime]) -> None:
        self.plan_task = plan
        self.send_task = send
        self.clock = clock

    def enqueue_plan(self, run_id: int) -> None:
        """Asks a worker to plan a broadcast run (fan-out)."""
        try:
            self.plan_task(run_id)
        except Exception:
            log.exception("could not enqueue planning of run %s; the sweeper will", run_id)

    def enqueue_send(
        self, run_id: int, token: datetime | None = None, at: datetime | None = None
    ) -> None:
        """Asks a worker to send the next slice of a run (at `at`, if given)."""
        args = (run_id, token.isoformat() if token else None)
        try:
            if at is not None and at > self.clock():
                delay = (at - self.clock()).total_seconds()
                self.send_task.schedule(args=args, delay=delay)
            else:
                self.send_task(*args)
        except Exception:
            log.exception("could not enqueue sending of run %s; the sweeper will", run_id)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep handed back to the queue."""

    contacts: int
    retries: int
    reclaimed: int


class Runtime:
    """The service's moving parts, built once per process from one Settings object."""

    def __init__(
        self,
        settings: Settings,
        *,
        huey: Huey | None = None,
        channels: Mapping[Channel, ChannelAdapter] | None = None,
        content: Content | None = None,
        catalogue: Catalogue | None = None,
        flow_files: FlowFiles | None = None,
        vocabulary: Vocabulary | None = None,
        clock: Callable[[], datetime] = utcnow,
        retry_policy: RetryPolicy | None = None,
        background: bool = False,
        deferred_enqueue: bool = False,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        # A worker's name on the messages it claims for sending (`bot worker --name`): its
        # successor after a crash takes those back at once (sweep(orphaned=True)).
        self.owner = owner
        self.clock = clock
        self.routes = installed_routes(settings)  # first: a bad CHANNEL_ORDER opens nothing
        # The long-running processes checkpoint SQLite's WAL in a thread of their own.
        # The web (deferred_enqueue) writes before the others on SQLite: an acknowledgement
        # waits for the write under way at most, not for the worker's backlog (bot/db/gate.py).
        self.db = Database(
            settings.database_url,
            background_checkpoint=background or deferred_enqueue,
            first=deferred_enqueue,
        )
        self.db.start_checkpoints()
        self.huey = huey if huey is not None else make_huey(settings)
        catalogue = catalogue or Catalogue.load()
        self.nlu = (
            RasaClient(
                settings.rasa_urls,
                timeout=settings.nlu_timeout_seconds,
                token=settings.rasa_token,
            )
            if settings.rasa_urls
            else None
        )
        content = content or Content.load()
        self.flows = sync_versions(self.db, flow_files or FlowFiles.load())
        # Inbound first: a queue that orders by priority (the embedded one; Redis's list does
        # not) hands out people's messages before sends and broadcasts.
        ranked = bool(getattr(self.huey.storage, "priority", False))
        self.process_task = self.huey.task(
            name="process_contact", priority=INBOUND_PRIORITY if ranked else None
        )(self._process_contact)
        self.retry_task = self.huey.task(
            name="send_retry", priority=SEND_PRIORITY if ranked else None
        )(self._send_retry)
        self.broadcast_plan_task = self.huey.task(name="broadcast_plan")(self._plan_broadcast)
        self.broadcast_send_task = self.huey.task(name="broadcast_send")(self._send_broadcast)
        self.pacer = Pacer(settings.redis_url, var_dir=settings.var_dir)
        # Channel order and failover (bot/failover.py): routes' health shared by every process.
        self.failover = Failover(
            self.db,
            self.routes,
            after=settings.failover_after,
            probe_seconds=settings.failover_probe_seconds,
            clock=clock,
        )
        # The broadcast service's narrow ports (bot/broadcasts/ports.py): it never sees this.
        self.broadcasts = BroadcastPorts(
            db=self.db,
            clock=clock,
            settings=settings,
            tasks=BroadcastQueue(self.broadcast_plan_task, self.broadcast_send_task, clock),
            pacer=self.pacer,
            texts=content.texts,
            surveys=self.flows,
            send=self._send_broadcast_message,
            routes=self.routes,
            owner=owner,
        )
        self.bot = Bot(
            content,
            faq=catalogue.topics,
            understand=timed_nlu(self.nlu.parse) if self.nlu else None,
            flows=Conversations(
                self.flows,
                Kit(vocabulary or Vocabulary.load(), content.texts),
                ttl=timedelta(minutes=settings.session_timeout_minutes),
            ),
            clock=clock,
            desk=SmsDesk(self.broadcasts),
        )
        self.channels = dict(channels) if channels is not None else default_channels(settings)
        self.outbox = Outbox(
            self.db,
            self.channels,
            schedule_retry=self._schedule_retry,
            policy=retry_policy or RetryPolicy(max_attempts=settings.send_max_attempts),
            clock=clock,
            batch_records=background,
            claim=timedelta(seconds=settings.claim_seconds),
            routes=default_routes(settings),
            failover=self.failover,
            owner=owner,
        )
        # In a worker (background=True) provider calls overlap on the sender's event loop and
        # turns are committed in groups; otherwise (tests, the CLI) everything runs inline.
        self.sender = AsyncSender(self.outbox, settings.send_concurrency) if background else None
        self.inbox = InboxProcessor(
            self.db,
            self.bot,
            send=self._dispatch,
            clock=clock,
            claim=timedelta(seconds=settings.claim_seconds),
            phone_key=settings.phone_key,
            # A shared queue hands one contact's turns to any worker (and to two threads of
            # one): answers keep the contact's order across them. The embedded default's
            # feeds hand a contact to one thread of one worker at a time.
            across_workers=background and not self.inbound_feed,
            owner=owner,
        )
        if background:
            self.inbox.start_group_commit()
        # In the web process the webhook answers as soon as the message is stored; a
        # background thread tells the queue. If the process dies in between, the sweeper
        # finds the stored message (RECOVER_AFTER_SECONDS) — nothing is lost either way.
        self._enqueuer: BatchThread[int] | None = None
        self._accept_batcher: AcceptBatcher | None = None
        self._spool: InboundSpool | None = None
        self._closed = False
        self._deferred_enqueue = deferred_enqueue
        # The embedded default's workers read waiting messages from the table (bot/feed.py).
        self.feed: InboxFeed | None = None
        self._doorbells: Ringer | None = None  # the spool's mover's (bot/doorbell.py)

    @property
    def inbound_feed(self) -> bool:
        """True on the embedded default (SQLite database and queue): inbound messages are
        not enqueued; workers find them in the messages table (bot/feed.py)."""
        return self.db.is_sqlite and isinstance(self.huey.storage, SqliteQueueStorage)

    # -- web side ---------------------------------------------------------------------------

    def accept(self, inbound: Inbound, simulated: bool = False) -> Accepted:
        """Stores an inbound message durably, then asks a worker to handle it.

        If the enqueue fails the message is still stored, and the sweeper picks it up.
        """
        if self._deferred_enqueue and self.db.is_sqlite:
            # The web on SQLite: many request threads, one write (one trip through the write
            # gate) per batch. PostgreSQL takes concurrent writers; on run-prod the batch
            # gained nothing measurable (300 msg/s: ack p99 714 ms with it, 568 without).
            accepted = self._accepter().accept(inbound, simulated, self.clock())
        else:
            accepted = accept(self.db, inbound, simulated, self.clock(), self.settings.phone_key)
        if accepted.duplicate or (self._deferred_enqueue and self.inbound_feed):
            return accepted  # the workers' feeds find the stored message
        if self._deferred_enqueue:
            self._enqueue_later(accepted.contact_id)
        else:
            self.enqueue_contact(accepted.contact_id)
        return accepted

    def receive(self, inbound: Inbound) -> Accepted | None:
        """A provider's webhook's message, before the webhook is answered: stored (the
        `Accepted`), or, in the web with INBOUND_SPOOL (the embedded default's), spooled
        (None): appended to the spool file and stored by the mover a moment later, in order
        (bot/spool.py), so that the acknowledgement never waits for the database, which the
        workers share (SQLite's write lock; PostgreSQL's CPU on a shared machine)."""
        if self._deferred_enqueue and self.settings.inbound_spool and inbound.provider_id:
            self.spool().put(inbound, self.clock())
            return None
        return self.accept(inbound)

    def spool(self) -> InboundSpool:
        """The web's inbound spool, started on first use (after gunicorn forked); its mover
        stores what every web process of the machine spooled, in one process at a time. On
        PostgreSQL each record is flushed to the disk before the webhook is answered, as
        PostgreSQL's commits are."""
        if self._spool is None:
            with _ENQUEUER_LOCK:
                if self._spool is None:
                    self._spool = InboundSpool(
                        spool_folder(self.settings.var_dir),
                        store=lambda batch: store_batch(self.db, batch, self.settings.phone_key),
                        stored=self._spooled_stored,
                        sync=not self.db.is_sqlite,
                        # The workers' feeds sleep until told (the embedded default).
                        moved=self._ringer().ring if self.inbound_feed else None,
                    )
        return self._spool

    def _ringer(self) -> Ringer:
        if self._doorbells is None:
            self._doorbells = Ringer(doorbell_folder(self.settings.var_dir))
        return self._doorbells

    def _spooled_stored(self, inbound: Inbound, accepted: Accepted) -> None:
        INBOUND.labels(inbound.channel.value, str(accepted.duplicate).lower()).inc()
        if accepted.duplicate:
            log.info("repeated delivery acknowledged (%s)", inbound.provider_id)
        elif not self.inbound_feed:
            self._enqueue_later(accepted.contact_id)

    def _accepter(self) -> AcceptBatcher:
        if self._accept_batcher is None:  # made on first use: after gunicorn has forked
            with _ENQUEUER_LOCK:
                if self._accept_batcher is None:
                    self._accept_batcher = AcceptBatcher(self.db, self.settings.phone_key)
        return self._accept_batcher

    def _enqueue_later(self, contact_id: int) -> None:
        if self._enqueuer is None:  # made on first use: after gunicorn has forked
            with _ENQUEUER_LOCK:
                if self._enqueuer is None:
                    self._enqueuer = BatchThread(self._enqueue_batch, 256, name="enqueuer")
        self._enqueuer.put(contact_id)

    def _enqueue_batch(self, contact_ids: list[int]) -> None:
        for contact_id in dict.fromkeys(contact_ids):  # one task per contact is enough
            self.enqueue_contact(contact_id)

    def enqueue_contact(self, contact_id: int) -> None:
        """Asks a worker to handle the contact's waiting messages (this one's feed, if it
        runs one)."""
        if self.feed is not None:
            self.feed.offer(contact_id)
            return
        try:
            self.process_task(contact_id)
        except Exception:
            log.exception("could not enqueue contact %s; the sweeper will retry", contact_id)

    def invite(self, contact_id: int, survey_key: str | None = None) -> str:
        """Starts a survey (the default one unless named) for a contact: a broadcast's or the
        dashboard's invitation. Returns `started` or why not (see InboxProcessor.start_flow)."""
        flow = self.flows.survey(survey_key)
        if flow is None:
            return "no_survey"
        return self.inbox.start_flow(contact_id, flow)

    def enqueue_broadcast_plan(self, run_id: int) -> None:
        """Asks a worker to plan a broadcast run (fan-out)."""
        self.broadcasts.tasks.enqueue_plan(run_id)

    def enqueue_broadcast_send(
        self, run_id: int, token: datetime | None = None, at: datetime | None = None
    ) -> None:
        """Asks a worker to send the next slice of a run (at `at`, if given)."""
        self.broadcasts.tasks.enqueue_send(run_id, token=token, at=at)

    # -- worker side ------------------------------------------------------------------------

    def make_feed(self, threads: int, share: tuple[int, int] = (0, 1)) -> InboxFeed:
        """This worker's inbound feed (the embedded default; see `inbound_feed`), not started:
        from now on `enqueue_contact` offers contacts to it."""
        doorbell = None
        try:
            doorbell = Doorbell(doorbell_folder(self.settings.var_dir), self.owner or "worker")
        except OSError as exc:  # a VAR_DIR path too long for a socket's name, say
            log.warning("the feed polls the table (no doorbell: %s)", exc)
        self.feed = InboxFeed(self.db, self._feed_contact, threads, share, doorbell=doorbell)
        if self.inbox.committer is not None:
            # Turns come one by one from the feed's threads: a batch waits a little for
            # company while a thread is free (bot/inbox.py TURN_LINGER).
            self.inbox.committer.wait_for_company(
                TURN_LINGER, self.feed.backlogged, self.feed.working
            )
            self.feed.on_backlog = self.inbox.committer.hurry_now
        return self.feed

    def _feed_contact(self, contact_id: int) -> bool:
        return self.inbox.process_contact(contact_id, FEED_TURNS) >= FEED_TURNS

    def _process_contact(self, contact_id: int) -> None:
        self.inbox.process_contact(contact_id)

    def _dispatch(self, jobs: list[SendJob]) -> None:
        if self.sender is not None:
            self.sender.submit(jobs)
            return
        for job in jobs:
            try:
                self.outbox.send(job)
            except Exception:
                # The row stays claimed; the sweeper hands it out again when the claim ends.
                log.exception("sending message %s failed unexpectedly", job.message_id)

    def _plan_broadcast(self, run_id: int) -> None:
        plan_run(self.broadcasts, run_id)

    def _send_broadcast(self, run_id: int, token: str | None = None) -> None:
        ports = self.broadcasts
        if self.behind():
            # Inbound first: while people who wrote wait (BACKLOG_*), the broadcast pauses.
            log.info("broadcast run %s paused: the worker is behind", run_id)
            held = datetime.fromisoformat(token) if token else None
            ports.tasks.enqueue_send(run_id, token=held, at=self.clock() + BEHIND_PAUSE)
            return
        result = send_slice(ports, run_id, datetime.fromisoformat(token) if token else None)
        if result.state in ("more", "quiet") and result.resume_at is not None:
            at = result.resume_at if result.state == "quiet" else None
            ports.tasks.enqueue_send(run_id, token=result.resume_at, at=at)

    def behind(self) -> bool:
        """True when more messages wait than BACKLOG_MESSAGES, or one waits longer than
        BACKLOG_SECONDS (bot/backlog.py)."""
        backlog = read_backlog(self.db, self.clock())
        return backlog.behind(self.settings.backlog_messages, self.settings.backlog_seconds)

    def _send_broadcast_message(self, message_id: int) -> bool:
        """The broadcasts' `send` port: False when the contact opted out meanwhile."""
        job = self.outbox.load(message_id)
        if job is None:
            return False
        self.dispatch_broadcast(job)
        return True

    def dispatch_broadcast(self, job: SendJob) -> None:
        """Hands one broadcast message to the sender, waiting while too many are in flight."""
        if self.sender is not None:
            limit = 2 * self.settings.send_concurrency
            while self.sender.in_flight >= limit:
                time.sleep(0.005)
        self._dispatch([job])

    def _send_retry(self, message_id: int) -> None:
        if self.outbox.claim(message_id) and (job := self.outbox.load(message_id)) is not None:
            self._dispatch([job])

    def _schedule_retry(self, message_id: int, delay: float) -> None:
        try:
            self.retry_task.schedule((message_id,), delay=delay)
        except Exception:
            log.exception("could not schedule retry of %s; the sweeper will", message_id)

    def sweep(
        self, now: datetime | None = None, limit: int = 1000, orphaned: bool = False
    ) -> SweepReport:
        """Re-enqueues work that lost its task: waiting inbound, due retries, dead claims.

        `orphaned`: this worker replaces one that died. Unnamed (`owner` None), it was the
        only one: every waiting message and every claimed send is taken back now, without
        waiting for RECOVER_AFTER_SECONDS and CLAIM_SECONDS to pass. Named, others are at work
        beside it: the sends claimed under its name are taken back now, the rest as usual.
        """
        now = now or self.clock()
        waiting_since = now - timedelta(seconds=self.settings.recover_after_seconds)
        claims_end: datetime | None = None
        leases_end: datetime | None = None
        if orphaned:
            claims_end = now + timedelta(seconds=self.settings.claim_seconds)
            if self.owner is None:
                waiting_since = now
                leases_end = claims_end
        # What a sweep hands to the queue is not handed out again for a claim's length, even
        # if its task is still queued behind a backlog (a flood of repeated tasks otherwise).
        lease = timedelta(seconds=self.settings.claim_seconds)
        contact_ids = waiting_contacts(self.db, waiting_since, limit, now, lease, leases_end)
        due = due_messages(self.db, now, limit, lease, leases_end)
        reclaimed = reclaim_dead_claims(
            self.db, now, claims_end, lease, self.owner if orphaned else None
        )
        for run_id, status in stalled_runs(self.db, now, limit):
            if status == "planning":
                self.enqueue_broadcast_plan(run_id)
            else:
                self.enqueue_broadcast_send(run_id)
        for contact_id in contact_ids:
            self.enqueue_contact(contact_id)
        for message_id in [*due, *reclaimed]:
            try:
                self.retry_task(message_id)
            except Exception:
                log.exception("could not enqueue send of %s", message_id)
        return SweepReport(len(contact_ids), len(due), len(reclaimed))

    def close(self) -> None:
        """Finishes sends under way and releases database connections. Once: later calls
        (the exit handler of bot/app.py after an explicit close) do nothing."""
        if self._closed:
            return
        self._closed = True
        self.db.stop_checkpoints()
        if self.feed is not None:
            self.feed.close()
        if self._spool is not None:
            self._spool.close()
        if self._doorbells is not None:  # after the mover, which rings with it
            self._doorbells.close()
        if self._accept_batcher is not None:
            self._accept_batcher.close()
        if self._enqueuer is not None:
            self._enqueuer.close()
        self.inbox.close()
        if self.sender is not None:
            self.sender.close()
        if self.outbox.recorder is not None:
            self.outbox.recorder.close()
        self.db.dispose()
