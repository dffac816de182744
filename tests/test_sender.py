"""The worker's sender keeps the rows it holds: a long local queue is not a dead worker.

A worker whose provider is slower than messages arrive holds sends in its own queue for
longer than CLAIM_SECONDS. The sweeper must not take those rows back (that sent them twice,
or asked the provider about each one), and a row it did take back from a stalled worker must
not be sent by that worker as well.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.channels.base import ChannelAbilities, SendResult
from bot.core.messages import Channel, Inbound, Language, Outbound
from bot.db.models import Message
from bot.inbox import InboxProcessor, accept
from bot.outbox import Outbox, SendJob, SentRecord
from bot.runtime import Runtime
from bot.sender import AsyncSender
from testkit.fake_twilio import FakeTwilio
from tests.support.clock import FakeClock


class GatedChannel:
    """A provider whose calls wait until the test opens the gate; records what it sent."""

    abilities = ChannelAbilities(find_sent=True)

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.sent: list[str] = []
        self.lookups = 0

    def send(self, message: Outbound) -> SendResult:
        raise AssertionError("the worker sends on its event loop")

    async def send_async(self, message: Outbound) -> SendResult:
        import asyncio

        await asyncio.to_thread(self.gate.wait, 30)
        self.sent.append(message.to)
        return SendResult(f"SM{len(self.sent):032d}", "queued")

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        self.lookups += 1
        return []

    async def aclose(self) -> None:
        return None


@pytest.fixture
def gated() -> GatedChannel:
    return GatedChannel()


@pytest.fixture
def sender(runtime: Runtime, gated: GatedChannel, clock: FakeClock) -> Iterator[AsyncSender]:
    """A worker's sender with one provider call at a time, over the runtime's database."""
    outbox = Outbox(
        runtime.db,
        {Channel.SMS: gated},
        schedule_retry=lambda message_id, delay: None,
        clock=clock,
        claim=timedelta(seconds=runtime.settings.claim_seconds),
    )
    async_sender = AsyncSender(outbox, concurrency=1)
    yield async_sender
    gated.gate.set()
    async_sender.close()


def queue_replies(runtime: Runtime, sender: AsyncSender, clock: FakeClock, people: int) -> None:
    """`people` contacts write HELP; the worker's turns hand their replies to `sender`."""
    inbox = InboxProcessor(
        runtime.db,
        runtime.bot,
        send=sender.submit,
        clock=clock,
        claim=timedelta(seconds=runtime.settings.claim_seconds),
    )
    for n in range(people):
        inbound = Inbound(
            channel=Channel.SMS, sender=f"+9779800000{n:03d}", body="help", provider_id=f"SM{n}"
        )
        accepted = accept(runtime.db, inbound, now=clock())
        assert inbox.process_contact(accepted.contact_id) == 1


def outbound_rows(runtime: Runtime) -> list[Message]:
    with runtime.db.read() as s:
        return list(
            s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id))
        )


def wait_idle(sender: AsyncSender) -> None:
    for _ in range(500):
        if sender.in_flight == 0:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the sender did not finish")


def test_a_queue_longer_than_the_claim_keeps_its_rows(
    runtime: Runtime,
    sender: AsyncSender,
    gated: GatedChannel,
    clock: FakeClock,
    twilio: FakeTwilio,
) -> None:
    queue_replies(runtime, sender, clock, people=3)  # one call under way, two waiting
    claim = runtime.settings.claim_seconds
    for _ in range(8):  # twice the claim passes while the provider holds the first call
        clock.advance(claim / 4)
        sender.renew_claims_now()
        report = runtime.sweep()
        assert report.reclaimed == 0 and report.retries == 0
    gated.gate.set()
    wait_idle(sender)
    rows = outbound_rows(runtime)
    assert len(gated.sent) == 3 and len(set(gated.sent)) == 3  # each once
    assert gated.lookups == 0 and twilio.sent == [] and twilio.list_calls == 0
    assert [r.status for r in rows] == ["queued"] * 3
    assert all(r.error_message is None for r in rows)


def test_a_row_taken_back_from_a_stalled_worker_is_not_sent_by_it(
    runtime: Runtime,
    sender: AsyncSender,
    gated: GatedChannel,
    clock: FakeClock,
    twilio: FakeTwilio,
) -> None:
    """The worker stalled past its claim (nothing renewed): the sweeper gives the rows to
    another worker, and the stalled one, waking up, sends none of those still waiting."""
    queue_replies(runtime, sender, clock, people=3)
    clock.advance(runtime.settings.claim_seconds + 1)
    assert runtime.sweep().reclaimed == 3  # sent by "another worker": the runtime's own
    assert len(twilio.sent) == 3
    gated.gate.set()
    wait_idle(sender)
    # Only the call already under way when the worker stalled reached its provider.
    assert len(gated.sent) == 1


def test_a_sweep_hands_a_pending_row_out_once_per_claim(
    runtime: Runtime, clock: FakeClock, twilio: FakeTwilio
) -> None:
    """A row whose task waits in a queue far behind is not given a new task at every sweep
    (the flood): once per claim at most, and a row never handed out is handed out at once."""
    runtime.retry_task = lambda message_id: None
    inbound = Inbound(Channel.SMS, "+9779811111111", "hi", provider_id="SMa")
    contact_id = accept(runtime.db, inbound, now=clock()).contact_id
    with runtime.db.write() as s:
        runtime.outbox.enqueue(
            s, contact_id, Outbound(Channel.SMS, "+9779811111111", "hello", Language.EN)
        )
    assert runtime.sweep().retries == 1
    assert runtime.sweep().retries == 0
    clock.advance(runtime.settings.claim_seconds / 2)
    assert runtime.sweep().retries == 0
    clock.advance(runtime.settings.claim_seconds / 2 + 1)
    assert runtime.sweep().retries == 1  # its task was lost after all: handed out again


def test_a_waiting_contact_is_enqueued_once_per_claim(
    runtime: Runtime, clock: FakeClock, twilio: FakeTwilio
) -> None:
    runtime.enqueue_contact = lambda contact_id: None  # type: ignore[method-assign]
    for n in range(3):
        inbound = Inbound(Channel.SMS, "+9779822222222", f"hi {n}", provider_id=f"SMw{n}")
        accept(runtime.db, inbound, now=clock())
    clock.advance(runtime.settings.recover_after_seconds + 1)
    assert runtime.sweep().contacts == 1
    assert runtime.sweep().contacts == 0
    clock.advance(runtime.settings.claim_seconds + 1)
    assert runtime.sweep().contacts == 1
    assert twilio.sent == []


class FirstWaits(GatedChannel):
    """Holds the call for `slow` until the gate opens; the others go at once."""

    def __init__(self, slow: str) -> None:
        super().__init__()
        self.slow = slow

    async def send_async(self, message: Outbound) -> SendResult:
        import asyncio

        if message.body == self.slow:
            await asyncio.to_thread(self.gate.wait, 30)
        self.sent.append(message.body)
        return SendResult(f"SM{len(self.sent):032d}", "queued")


def test_a_contacts_later_turn_waits_for_the_earlier_ones_sends(
    runtime: Runtime, clock: FakeClock
) -> None:
    """Two turns of one contact handed over one after the other (the worker was behind and
    handled both questions): the second answer does not overtake the first."""
    channel = FirstWaits(slow="first answer")
    outbox = Outbox(runtime.db, {Channel.SMS: channel}, lambda i, d: None, clock=clock)
    sender = AsyncSender(outbox, concurrency=4)

    def job(message_id: int, contact_id: int, body: str) -> SendJob:
        return SendJob(message_id, contact_id, Outbound(Channel.SMS, "+9779800000001", body,
                                                        Language.EN))  # fmt: skip

    try:
        sender.submit([job(901, 1, "first answer")])
        sender.submit([job(902, 1, "second answer")])
        sender.submit([job(903, 2, "someone else")])
        for _ in range(200):  # the other contact is not held up
            if channel.sent:
                break
            threading.Event().wait(0.01)
        assert channel.sent == ["someone else"]
        channel.gate.set()
        wait_idle(sender)
        assert channel.sent == ["someone else", "first answer", "second answer"]
    finally:
        channel.gate.set()
        sender.close()


class LineEnd(GatedChannel):
    """One worker's end of the provider line both workers send through: `bodies`, shared,
    is what the provider received, in order. A held end's calls wait for the gate."""

    def __init__(self, bodies: list[str], held: bool) -> None:
        super().__init__()
        self.bodies = bodies
        self.held = held

    async def send_async(self, message: Outbound) -> SendResult:
        import asyncio

        if self.held:
            await asyncio.to_thread(self.gate.wait, 30)
        self.bodies.append(message.body)
        return SendResult(f"SM{len(self.bodies):032d}", "queued")


def two_workers(
    runtime: Runtime, clock: FakeClock, across_workers: bool
) -> tuple[list[str], LineEnd, list[tuple[InboxProcessor, AsyncSender]]]:
    """Two workers' turn handlers and senders over one database (as on PostgreSQL and a
    shared queue, where any worker takes any contact's turn). The first one's provider
    calls wait for the gate; returns what the provider received, that gate and the pairs."""
    claim = timedelta(seconds=runtime.settings.claim_seconds)
    bodies: list[str] = []
    ends = [LineEnd(bodies, held=True), LineEnd(bodies, held=False)]
    workers = []
    for end in ends:
        outbox = Outbox(runtime.db, {Channel.SMS: end}, lambda i, d: None, clock=clock, claim=claim)
        sender = AsyncSender(outbox, concurrency=4)
        inbox = InboxProcessor(runtime.db, runtime.bot, sender.submit, clock, claim,
                               across_workers=across_workers)  # fmt: skip
        workers.append((inbox, sender))
    return bodies, ends[0], workers


def write(runtime: Runtime, clock: FakeClock, body: str, sid: str) -> int:
    inbound = Inbound(Channel.SMS, "+9779833333333", body, provider_id=sid)
    return accept(runtime.db, inbound, now=clock()).contact_id


@pytest.mark.parametrize("across_workers", [True, False])
def test_a_later_answer_from_another_worker_waits_for_the_earlier_one(
    runtime: Runtime, clock: FakeClock, across_workers: bool
) -> None:
    """A contact wrote twice; worker A handled the first question and its answer waits in
    A's sender (its provider call is slow), worker B handled the second: B's answer goes out
    after A's, not before. Without the wait across workers (the embedded default's feeds
    keep a contact on one worker) it would overtake it."""
    contact_id = write(runtime, clock, "help", "SMo1")
    assert outbound_rows(runtime) == []
    bodies, held, [(inbox_a, sender_a), (inbox_b, sender_b)] = two_workers(
        runtime, clock, across_workers
    )
    try:
        assert inbox_a.process_contact(contact_id) == 1  # its answer waits at the provider
        write(runtime, clock, "stop", "SMo2")
        assert inbox_b.process_contact(contact_id) == 1
        answers = [row.body for row in outbound_rows(runtime)]
        assert len(answers) == 2 and answers[0] != answers[1]
        for _ in range(30):  # B has had time to send, had it not waited
            threading.Event().wait(0.01)
        if not across_workers:
            wait_idle(sender_b)
            assert bodies == [answers[1]]  # overtaken: what the wait prevents
            return
        assert bodies == []
        held.gate.set()
        wait_idle(sender_a)
        wait_idle(sender_b)
        assert bodies == answers
        assert [row.status for row in outbound_rows(runtime)] == ["queued", "queued"]
    finally:
        held.gate.set()
        sender_a.close()
        sender_b.close()


def test_a_later_turn_handed_over_first_by_another_thread_still_goes_second(
    runtime: Runtime, clock: FakeClock
) -> None:
    """Two threads of one worker handled the contact's two turns (a shared queue can hand
    a contact to both): the second thread handed its answer to the sender before the first
    did. The first answer still goes first."""
    contact_id = write(runtime, clock, "help", "SMt1")
    bodies, _held, [_, (_inbox, sender)] = two_workers(runtime, clock, True)
    claim = timedelta(seconds=runtime.settings.claim_seconds)
    handed: list[list[SendJob]] = []
    slow_thread = InboxProcessor(runtime.db, runtime.bot, handed.append, clock, claim,
                                 across_workers=True)  # fmt: skip
    fast_thread = InboxProcessor(runtime.db, runtime.bot, sender.submit, clock, claim,
                                 across_workers=True)  # fmt: skip
    try:
        assert slow_thread.process_contact(contact_id) == 1  # committed, not handed over yet
        write(runtime, clock, "stop", "SMt2")
        assert fast_thread.process_contact(contact_id) == 1
        for _ in range(30):
            threading.Event().wait(0.01)
        assert bodies == []
        sender.submit(handed[0])
        wait_idle(sender)
        assert bodies == [row.body for row in outbound_rows(runtime)]
    finally:
        sender.close()


class FailsFirst(LineEnd):
    """The first call fails in a way the sender did not expect (not a provider error)."""

    failed = False

    async def send_async(self, message: Outbound) -> SendResult:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug in the adapter")
        return await super().send_async(message)


def test_a_later_answer_does_not_wait_for_an_older_row_this_sender_dropped(
    runtime: Runtime, clock: FakeClock
) -> None:
    """The older answer's send failed unexpectedly here (its row stays claimed for the
    sweeper): the next answer of the contact, from this worker, goes at once rather than
    waiting for that claim to run out."""
    contact_id = write(runtime, clock, "help", "SMf1")
    claim = timedelta(seconds=runtime.settings.claim_seconds)
    bodies: list[str] = []
    end = FailsFirst(bodies, held=False)
    outbox = Outbox(runtime.db, {Channel.SMS: end}, lambda i, d: None, clock=clock, claim=claim)
    sender = AsyncSender(outbox, concurrency=4)
    inbox = InboxProcessor(runtime.db, runtime.bot, sender.submit, clock, claim,
                           across_workers=True)  # fmt: skip
    try:
        assert inbox.process_contact(contact_id) == 1
        wait_idle(sender)
        assert bodies == [] and [r.status for r in outbound_rows(runtime)] == ["dispatching"]
        write(runtime, clock, "stop", "SMf2")
        assert inbox.process_contact(contact_id) == 1
        wait_idle(sender)
        assert bodies == [outbound_rows(runtime)[1].body]
    finally:
        sender.close()


def test_a_send_does_not_wait_for_a_row_whose_worker_died(
    runtime: Runtime, clock: FakeClock
) -> None:
    """The older answer's worker is gone (its claim is not renewed): once that claim runs
    out the later answer goes; the sweeper hands the older row to a worker of its own."""
    contact_id = write(runtime, clock, "help", "SMd1")
    bodies, held, [(inbox_a, sender_a), (inbox_b, sender_b)] = two_workers(runtime, clock, True)
    try:
        assert inbox_a.process_contact(contact_id) == 1  # A never gets its answer out
        write(runtime, clock, "stop", "SMd2")
        assert inbox_b.process_contact(contact_id) == 1
        second = outbound_rows(runtime)[1].body
        for _ in range(30):
            threading.Event().wait(0.01)
        assert bodies == []
        clock.advance(runtime.settings.claim_seconds + 1)
        wait_idle(sender_b)
        assert bodies == [second]
    finally:
        held.gate.set()
        sender_a.close()
        sender_b.close()


def test_a_send_goes_when_older_sends_cannot_be_looked_up(
    runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database does not answer the question about older sends: the answer goes anyway
    (it is what the person asked for), rather than waiting or being dropped."""
    contact_id = write(runtime, clock, "help", "SMe1")
    bodies, held, [(inbox_a, sender_a), (inbox_b, sender_b)] = two_workers(runtime, clock, True)

    def unreachable(message_ids: list[int]) -> list[int]:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    try:
        assert inbox_a.process_contact(contact_id) == 1
        monkeypatch.setattr(sender_b.outbox, "still_held", unreachable)
        write(runtime, clock, "stop", "SMe2")
        assert inbox_b.process_contact(contact_id) == 1
        wait_idle(sender_b)
        assert bodies == [outbound_rows(runtime)[1].body]
    finally:
        held.gate.set()
        sender_a.close()
        sender_b.close()


class SlowRecorderOutbox(Outbox):
    """An outbox whose recorder writes sends' outcomes only when the test lets it (a worker
    far behind: the batch recorder lags seconds behind the sends)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.release = threading.Event()
        super().__init__(*args, batch_records=True, **kwargs)  # type: ignore[arg-type]

    def record_batch(self, records: list[SentRecord]) -> None:
        self.release.wait(30)
        super().record_batch(records)


def test_a_sent_row_waiting_for_its_record_is_not_taken_back(
    runtime: Runtime, gated: GatedChannel, clock: FakeClock, twilio: FakeTwilio
) -> None:
    """Sent, but its outcome not written yet: the sweeper must not take the row back and
    look it up or send it again (under load that fed a loop of ever more work). Once the
    outcome is written the sender lets the row go."""
    outbox = SlowRecorderOutbox(
        runtime.db,
        {Channel.SMS: gated},
        schedule_retry=lambda message_id, delay: None,
        clock=clock,
        claim=timedelta(seconds=runtime.settings.claim_seconds),
    )
    sender = AsyncSender(outbox, concurrency=1)
    try:
        gated.gate.set()
        queue_replies(runtime, sender, clock, people=2)
        wait_idle(sender)
        assert len(gated.sent) == 2
        claim = runtime.settings.claim_seconds
        for _ in range(6):  # the outcome stays unwritten for one and a half claims
            clock.advance(claim / 4)
            sender.renew_claims_now()
            assert runtime.sweep().reclaimed == 0
        outbox.release.set()
        for _ in range(500):
            if all(r.status == "queued" for r in outbound_rows(runtime)):
                break
            threading.Event().wait(0.01)
        clock.advance(claim / 2 + 1)
        sender.renew_claims_now()
        assert sender._claims == {}  # let go once written
    finally:
        outbox.release.set()
        sender.close()
        outbox.recorder.close()  # type: ignore[union-attr]
    assert len(gated.sent) == 2 and gated.lookups == 0 and twilio.sent == []


def test_claims_are_renewed_in_batches_only_where_the_claim_is_still_ours(
    runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One statement per batch, still compare-and-set per row: a row whose claim changed
    (taken back and claimed again elsewhere) or that is no longer dispatching is left."""
    import bot.outbox

    monkeypatch.setattr(bot.outbox, "RENEW_BATCH", 4)  # several batches with 10 rows
    inbound = Inbound(Channel.SMS, "+9779811111112", "hi", provider_id="SMb")
    contact_id = accept(runtime.db, inbound, now=clock()).contact_id
    with runtime.db.write() as s:
        for n in range(10):
            runtime.outbox.enqueue(
                s, contact_id, Outbound(Channel.SMS, "+9779811111112", f"m{n}", Language.EN)
            )
    ids = [r.id for r in outbound_rows(runtime)]
    held = {}
    for message_id in ids:
        assert runtime.outbox.claim(message_id)
        job = runtime.outbox.load(message_id)
        assert job is not None and job.claimed_until is not None
        held[message_id] = job.claimed_until
        clock.advance(0.001)  # every row its own claim time
    stale = held[ids[2]] - timedelta(seconds=1)  # the claim we remember is not the row's
    held_by_us = held | {ids[2]: stale}
    with runtime.db.write() as s:  # one row already recorded as sent
        s.get(Message, ids[7]).status = "queued"  # type: ignore[union-attr]
    clock.advance(1)
    renewed = runtime.outbox.renew_claims(held_by_us)
    expected = set(ids) - {ids[2], ids[7]}
    assert set(renewed) == expected
    until = clock() + runtime.outbox.claim_for
    claims = {r.id: r.claimed_until for r in outbound_rows(runtime)}
    assert all(claims[i] == until for i in expected)
    assert claims[ids[2]] == held[ids[2]]  # untouched


class FailingChannel:
    """A provider whose sends fail as the test says; records its lookups."""

    abilities = ChannelAbilities(find_sent=True)

    def __init__(self, maybe_sent: bool) -> None:
        self.maybe_sent = maybe_sent
        self.lookups = 0

    def send(self, message: Outbound) -> SendResult:
        from bot.channels.base import TransientSendError

        raise TransientSendError("no answer", maybe_sent=self.maybe_sent)

    def find_sent(self, message: Outbound, since: datetime) -> list[SendResult]:
        self.lookups += 1
        return []


@pytest.mark.parametrize(
    ("maybe_sent", "recovered", "asks_first"),
    [(True, False, True), (False, True, True), (False, False, False)],
)
def test_a_send_that_may_have_arrived_is_looked_up_before_it_is_sent_again(
    runtime: Runtime, clock: FakeClock, maybe_sent: bool, recovered: bool, asks_first: bool
) -> None:
    """Without failover too: a send the adapter says may have reached the provider, or a send
    taken back from a dead worker whose retry failed, keeps its mark; its next attempt asks
    the provider first. A send that certainly did not get there is simply sent again."""
    channel = FailingChannel(maybe_sent)
    outbox = Outbox(
        runtime.db,
        {Channel.SMS: channel},  # type: ignore[dict-item]
        schedule_retry=lambda message_id, delay: None,
        clock=clock,
    )
    inbound = Inbound(Channel.SMS, "+9779811111113", "hi", provider_id="SMc")
    contact_id = accept(runtime.db, inbound, now=clock()).contact_id
    with runtime.db.write() as s:
        message_id = outbox.enqueue(
            s, contact_id, Outbound(Channel.SMS, "+9779811111113", "hello", Language.EN)
        )
    assert outbox.claim(message_id)
    job = outbox.load(message_id)
    assert job is not None
    if recovered:  # as `load` makes it for a row the sweeper took back
        from dataclasses import replace

        job = replace(job, recovered_since=clock() - timedelta(minutes=1))
    outbox.send(job)
    clock.advance(600)
    assert outbox.claim(message_id)
    again = outbox.load(message_id)
    assert again is not None
    assert (again.recovered_since is not None) is asks_first
    lookups = channel.lookups
    outbox.send(again)
    assert channel.lookups - lookups == (1 if asks_first else 0)


class RecordingOutbox:
    """What the sender needs of an outbox, recording the order of its sends."""

    claim_for = timedelta(minutes=5)

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.channels: dict[Channel, object] = {}  # no adapters to close
        self.routes: dict[str, object] = {}

    def clock(self) -> datetime:
        return datetime.now(UTC)

    async def send_async(self, job: SendJob) -> None:
        await asyncio.sleep(0.001 * (job.message_id % 3))  # calls overlap and end out of turn
        self.sent.append(job.message_id)


def test_batches_handed_over_by_many_threads_go_once_each_and_a_contacts_in_order() -> None:
    outbox = RecordingOutbox()
    sender = AsyncSender(outbox, concurrency=4)  # type: ignore[arg-type]
    out = Outbound(Channel.SMS, "+9779800000001", "hi", Language.EN)

    def hand_over(contact: int) -> None:  # one handler thread's turns: two replies each
        for turn in range(25):
            ids = [contact * 1000 + turn * 2, contact * 1000 + turn * 2 + 1]
            sender.submit([SendJob(i, contact, out) for i in ids])

    threads = [threading.Thread(target=hand_over, args=(c,)) for c in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sender.close()  # waits for every batch handed over
    assert sender.in_flight == 0
    assert sorted(outbox.sent) == sorted(c * 1000 + n for c in range(1, 9) for n in range(50))
    for contact in range(1, 9):
        theirs = [i for i in outbox.sent if i // 1000 == contact]
        assert theirs == sorted(theirs)
