"""The worker's sender: provider calls overlap on one asyncio loop in a background thread.

A provider call takes ~200 ms over the internet. Dozens of threads could overlap them too,
but each thread costs GIL hand-offs and the synchronous HTTP stack costs ~3× the CPU of the
async one (measured: 0.68 vs 0.23 ms per send), so one loop carries all of them.

Claims: every row handed to the sender is claimed by this worker until `claimed_until`
(CLAIM_SECONDS after it was committed or taken). When the provider is slower than messages
arrive, sends wait here longer than that; the sender keeps the claims of the rows it holds
(waiting or under way) from running out by renewing them, compare-and-set, while they have
less than half a claim left, and checks at the moment a send starts that its row is still
its own. So the sweeper takes back only the rows of a worker that died (or stalled past its
claim), and a row it did take back is never sent by the stalled worker as well.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime, timedelta

from bot.outbox import Outbox, SendJob

log = logging.getLogger(__name__)

# How often a send that waits for another worker's older row of the same contact looks
# again: at first soon (that send is usually under way), then at most every second.
EARLIER_SEND_PAUSE = 0.02
EARLIER_SEND_PAUSE_MAX = 1.0


class AsyncSender:
    """Sends claimed outbox rows; a contact's messages go out in the order they were handed
    over (one turn's in order, and a turn's after the previous turn's: a contact who wrote
    twice while the worker was behind gets the answers in the order of the questions)."""

    def __init__(self, outbox: Outbox, concurrency: int) -> None:
        self.outbox = outbox
        self._loop = asyncio.new_event_loop()
        self._limit = asyncio.Semaphore(concurrency)
        # Batches handed over and not finished: a batch goes to the loop through `_incoming`,
        # which the loop empties in one callback (one wake-up of the loop for a burst, not a
        # concurrent Future chained to a task per batch: py-spy put that hand-over at a
        # tenth of the sender thread's time at 100 FAQ msg/s, issue 15).
        self._lock = threading.Condition()
        self._incoming: list[list[SendJob]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Rows this sender holds (waiting or under way) -> the claim it holds them by; only
        # the loop's thread touches it. A row missing here was lost (see renew_claims).
        self._claims: dict[int, datetime] = {}
        # Rows whose send is done and whose outcome may not be written yet -> until when
        # their claims are kept (see _recording).
        self._done_sends: dict[int, datetime] = {}
        # Rows of this sender that a later send of the same contact waits for (see
        # _after_earlier_sends) -> resolved when the row's send is done.
        self._waiters: dict[int, asyncio.Future[None]] = {}
        # Rows this sender dropped without sending them (a failure it did not expect, a row
        # taken back) -> until when that is remembered (a claim).
        self._dropped: dict[int, datetime] = {}
        # One lock per contact with sends waiting (FIFO: batches start in submission order).
        self._contacts: dict[int, tuple[asyncio.Lock, int]] = {}
        self._thread = threading.Thread(target=self._loop.run_forever, name="sender", daemon=True)
        self._thread.start()
        self._keeper = asyncio.run_coroutine_threadsafe(self._keep_claims(), self._loop)

    @property
    def in_flight(self) -> int:
        """Batches submitted and not finished yet."""
        with self._lock:
            return self._in_flight

    def submit(self, jobs: list[SendJob]) -> None:
        """Queues the jobs; returns at once. Batches start in the order they are submitted."""
        with self._lock:
            self._incoming.append(jobs)
            self._in_flight += 1
            first = len(self._incoming) == 1
        if first:  # the loop has not been asked yet: one callback takes every batch queued
            self._loop.call_soon_threadsafe(self._take_incoming)

    def _take_incoming(self) -> None:
        with self._lock:
            batches, self._incoming = self._incoming, []
        for jobs in batches:
            task = self._loop.create_task(self._send_batch(jobs))
            self._tasks.add(task)  # the loop keeps only weak references to its tasks
            task.add_done_callback(self._tasks.discard)

    async def _send_batch(self, jobs: list[SendJob]) -> None:
        try:
            await self._send_in_order(jobs)
        except Exception:
            log.exception("a batch of sends failed unexpectedly")
        finally:
            with self._lock:
                self._in_flight -= 1
                if not self._in_flight:
                    self._lock.notify_all()

    async def _send_in_order(self, jobs: list[SendJob]) -> None:
        for job in jobs:
            if job.claimed_until is not None:
                self._claims[job.message_id] = job.claimed_until
        contact_id = jobs[0].contact_id if jobs else 0
        lock, users = self._contacts.get(contact_id, (asyncio.Lock(), 0))
        self._contacts[contact_id] = (lock, users + 1)
        try:
            if jobs and jobs[0].after:
                await self._after_earlier_sends(jobs[0])  # the turn's rows go in order
            async with lock:
                for job in jobs:
                    try:
                        async with self._limit:
                            if await self._still_ours(job):
                                await self.outbox.send_async(job)
                                self._recording(job)
                                continue
                    except Exception:
                        # The row stays claimed; the sweeper hands it out again when the
                        # claim ends.
                        log.exception("sending message %s failed unexpectedly", job.message_id)
                    finally:
                        self._finished(job.message_id)
                    self._claims.pop(job.message_id, None)
        except BaseException:
            for job in jobs:
                self._claims.pop(job.message_id, None)
                self._finished(job.message_id)
            raise
        finally:
            lock, users = self._contacts[contact_id]
            if users > 1:
                self._contacts[contact_id] = (lock, users - 1)
            else:
                del self._contacts[contact_id]

    async def _after_earlier_sends(self, job: SendJob) -> None:
        """Waits until the contact's older rows that were held for sending when this one was
        written (`job.after`: a shared queue hands a contact's turns to any worker, or to
        two threads of this one) are sent: by this sender, or by another worker (its
        outcome written). A contact who wrote twice then gets the answers in order even
        when two workers handled the two questions. Called before the contact's lock is
        taken, so this sender's own older rows go first; ids only grow along a contact's
        turns, so the oldest row never waits for anyone. Rows this sender holds are waited
        for here, without the database; another worker's are looked up, less and less
        often. A row whose worker died stops being held when its claim runs out; after half
        a claim of waiting the answer goes regardless."""
        pause = EARLIER_SEND_PAUSE
        give_up = self.outbox.clock() + self._margin
        while True:
            waiting = [i for i in job.after if not self._done_with_row(i)]
            mine = [i for i in waiting if i in self._claims]
            if mine:
                await self._sent(mine[0])
                continue
            if not waiting:
                return
            try:
                held = await asyncio.to_thread(self.outbox.still_held, waiting)
            except Exception:
                # The database is unreachable: the answer goes now rather than wait for it
                # (order is a courtesy; the answer is what was asked for).
                log.warning("could not look for older sends of message %s's contact; sending",
                            job.message_id, exc_info=True)  # fmt: skip
                return
            if all(self._done_with_row(i) for i in held):
                return
            if self.outbox.clock() > give_up:
                log.warning("message %s waited half a claim for older sends %s; sending",
                            job.message_id, held)  # fmt: skip
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, EARLIER_SEND_PAUSE_MAX)

    async def _sent(self, message_id: int) -> None:
        """Until this sender is done with the row (sent, or given up)."""
        waiter = self._waiters.get(message_id)
        if waiter is None:
            waiter = self._waiters[message_id] = self._loop.create_future()
        await waiter

    def _done_with_row(self, message_id: int) -> bool:
        """Whether this sender is done with the row: sent (its outcome maybe not written
        yet), or dropped without sending (a later answer of the contact waits no more)."""
        return message_id in self._done_sends or message_id in self._dropped

    def _finished(self, message_id: int) -> None:
        if message_id not in self._done_sends:  # not sent: failed, or no longer ours
            self._dropped[message_id] = self.outbox.clock() + self.outbox.claim_for
        waiter = self._waiters.pop(message_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _recording(self, job: SendJob) -> None:
        """A send is done, but the worker's recorder may write its outcome only later (it
        writes in batches; under a backlog seconds later). Until then the row is still ours:
        its claim keeps being renewed, so the sweeper does not take it back and send (or
        adopt) it again, which under load fed a loop of ever more work. The next renewal
        after the outcome is written finds the row no longer dispatching and lets it go; a
        row still dispatching two claims after its send (the recorder lost its batch) is let
        go as well, for the sweeper to take back and adopt."""
        if job.message_id in self._claims:
            self._done_sends[job.message_id] = self.outbox.clock() + 2 * self.outbox.claim_for

    async def _still_ours(self, job: SendJob) -> bool:
        """At the start of a send: True when the row is still claimed by us for long enough
        for the call (renewing the claim first if it is about to run out)."""
        if job.claimed_until is None:
            return True  # not a claimed row (nothing to keep)
        until = self._claims.get(job.message_id)
        if until is not None and until - self.outbox.clock() < self._margin:
            renewed = await asyncio.to_thread(self.outbox.renew_claims, {job.message_id: until})
            until = renewed.get(job.message_id)
        if until is None:
            log.warning("message %s was taken back while it waited here; not sending it",
                        job.message_id)  # fmt: skip
            return False
        return True

    @property
    def _margin(self) -> timedelta:
        """Claim time a held row keeps at least: renewed when less is left."""
        return self.outbox.claim_for / 2

    async def _keep_claims(self) -> None:
        every = max(0.05, self.outbox.claim_for.total_seconds() / 4)
        while True:
            await asyncio.sleep(every)
            try:
                await self.renew_claims()
            except Exception:
                log.exception("could not renew the claims of waiting sends; trying again")

    async def renew_claims(self) -> int:
        """Renews the claims of held rows with less than half a claim left (the sender does
        this every quarter of a claim); returns how many it renewed. A row not renewed was
        taken back by the sweeper (this worker stalled past its claim): it is dropped here
        and will not be sent by this worker."""
        now = self.outbox.clock()
        for message_id, remember_until in list(self._dropped.items()):
            if remember_until < now:
                del self._dropped[message_id]
        for message_id, keep_until in list(self._done_sends.items()):
            if keep_until < now or message_id not in self._claims:
                self._claims.pop(message_id, None)
                del self._done_sends[message_id]
        due = {i: until for i, until in self._claims.items() if until - now < self._margin}
        if not due:
            return 0
        renewed = await asyncio.to_thread(self.outbox.renew_claims, due)
        for message_id in due:
            if message_id not in self._claims:
                continue  # finished meanwhile
            if message_id in renewed:
                self._claims[message_id] = renewed[message_id]
            else:
                del self._claims[message_id]
                self._done_sends.pop(message_id, None)
        return len(renewed)

    def renew_claims_now(self, timeout: float = 30.0) -> int:
        """`renew_claims` from another thread (tests, a fake clock); waits for it."""
        return asyncio.run_coroutine_threadsafe(self.renew_claims(), self._loop).result(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Waits for sends under way, then stops the loop."""
        with self._lock:
            if not self._lock.wait_for(lambda: not self._in_flight, timeout=timeout):
                log.error("%d batches of sends did not finish before shutdown", self._in_flight)
        self._keeper.cancel()
        for adapter in {*self.outbox.channels.values(), *self.outbox.routes.values()}:
            asyncio.run_coroutine_threadsafe(adapter.aclose(), self._loop).result(timeout=timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=timeout)
        self._loop.close()
