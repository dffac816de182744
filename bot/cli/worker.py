"""`bot worker`: the job queue consumer, with the sweeper that re-enqueues lost work."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from bot.cli.common import settings_or_exit

if TYPE_CHECKING:
    from huey.consumer import Consumer

    from bot.runtime import Runtime

log = logging.getLogger("bot")


@click.command()
@click.option("--sweep-every", default=10.0, show_default=True, help="seconds between sweeps")
@click.option(
    "--name",
    default=None,
    callback=lambda _ctx, _param, value: check_name(value),
    help="this worker's name on the sends it claims (unique among the database's workers)",
)
@click.option(
    "--after-crash",
    is_flag=True,
    help="the worker of this --name died (without --name: the only worker of this "
    "database): take back what it held at once",
)
@click.option(
    "--wait-for-nlu",
    is_flag=True,
    help="wait (up to 5 min) until a Rasa server answers before handling messages",
)
@click.option(
    "--share",
    default="1/1",
    show_default=True,
    help="K/N: on SQLite, handle the inbound messages of every Nth contact, the Kth share",
)
def worker(
    sweep_every: float, name: str | None, after_crash: bool, wait_for_nlu: bool, share: str
) -> None:
    """Runs the job queue consumer: handles inbound messages and sends the outbox.

    WORKER_CONCURRENCY threads handle messages; up to SEND_CONCURRENCY provider calls overlap.
    With --after-crash (`bot run` restarting a worker that died) the first sweep takes back
    the dead worker's sends at once, not after CLAIM_SECONDS: with --name, the sends it
    claimed under that name (other workers keep theirs); without, everything, its waiting
    messages too (not after RECOVER_AFTER_SECONDS), so never give it without --name while
    another worker uses the database (it would take that one's work).
    With --wait-for-nlu (`bot run` starting Rasa beside it) messages wait in the inbox until
    Rasa has loaded its model, instead of being answered "we will answer soon".
    On the embedded default (SQLite) the worker finds inbound messages in the messages table
    (bot/feed.py); N workers on one file take --share 1/N .. N/N of the contacts.
    """
    from bot.cli.common import freeze_startup_heap
    from bot.runtime import Runtime

    settings = settings_or_exit()
    part = parse_share(share)
    # Dozens of threads share the GIL here; a thread holding the database write gate must not
    # wait the default 5 ms for its turn, or every other writer on the machine waits too.
    sys.setswitchinterval(0.0005)
    if settings.worker_nice:
        # Webhook acknowledgements are the latency that matters; replies can trail by a few
        # milliseconds when the machine is busy (README: benchmark).
        os.nice(settings.worker_nice)
    runtime = Runtime(settings, background=True, owner=name)
    feed = runtime.make_feed(settings.worker_concurrency, part) if runtime.inbound_feed else None
    freeze_startup_heap()  # a collection must not stall a turn holding the write gate
    stop = threading.Event()
    if wait_for_nlu and settings.rasa_urls:
        wait_for_rasa(settings.rasa_urls)

    if after_crash:
        # Before the consumer runs: every claim found under our name (or, unnamed, at all) is
        # the dead worker's, none ours yet.
        log.warning("taking back what the previous worker held: %s", runtime.sweep(orphaned=True))

    def sweeper() -> None:
        while not stop.is_set():
            try:
                report = runtime.sweep()
                if report.contacts or report.retries or report.reclaimed:
                    log.info("sweeper re-enqueued %s", report)
            except Exception:
                log.exception("sweep failed; trying again later")
            stop.wait(sweep_every)

    threading.Thread(target=sweeper, name="sweeper", daemon=True).start()
    if feed is not None:
        feed.start()
    consumer = make_consumer(runtime)
    try:
        consumer.run()
    finally:
        stop.set()
        runtime.close()


# Huey's threads beside an inbound feed: sends' retries and broadcasts only.
QUEUE_THREADS_BESIDE_FEED = 4
# How long an idle queue thread waits before it looks again. Where the queue carries
# people's messages (no feed): 100 ms (fewer polls with 16 threads measured no less CPU, and
# later pick-ups). Beside a feed the queue carries only retries (due seconds later anyway) and
# broadcasts: 1 s. The four threads' polls every 100 ms cost a worker 6 ms of CPU a second,
# idle or under load (they never find a message): 0.12 ms per message at 100 msg/s for two.
QUEUE_MAX_DELAY = 0.1
QUEUE_MAX_DELAY_BESIDE_FEED = 1.0


# The width of messages.claimed_by.
NAME_LENGTH = 120


def check_name(name: str | None) -> str | None:
    """--name as given; click.BadParameter naming --name if it does not fit the column."""
    if name is not None and not 0 < len(name) <= NAME_LENGTH:
        raise click.BadParameter(
            f"must be 1 to {NAME_LENGTH} characters (got {len(name)})", param_hint="--name"
        )
    return name


def parse_share(text: str) -> tuple[int, int]:
    """ "K/N" (1 <= K <= N) as (K-1, N); raises click.BadParameter naming --share."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not K/N", param_hint="--share") from None
    if not 1 <= k <= n:
        raise click.BadParameter(f"{text!r}: K must be between 1 and N", param_hint="--share")
    return k - 1, n


def make_consumer(runtime: Runtime, check_health: bool = True) -> Consumer:
    """The queue consumer `bot worker` runs: WORKER_CONCURRENCY handler threads, or a few
    beside an inbound feed (also what bench/cpu_profile.py measures)."""
    threads = runtime.settings.worker_concurrency
    max_delay = QUEUE_MAX_DELAY
    if runtime.feed is not None:
        threads = min(threads, QUEUE_THREADS_BESIDE_FEED)
        max_delay = QUEUE_MAX_DELAY_BESIDE_FEED
    return runtime.huey.create_consumer(
        workers=threads,
        worker_type="thread",
        periodic=False,
        # Polling the embedded queue: an idle thread waits at most max_delay for new work,
        # and polls again at once after a task.
        initial_delay=0.01,
        backoff=1.5,
        max_delay=max_delay,
        check_worker_health=check_health,
    )


# Rasa loads its model in 20-120 s; a broken one never answers: then the worker goes on and
# answers as it does when Rasa is down (catalogue matches, "we will answer soon").
NLU_WAIT_SECONDS = 300.0


def wait_for_rasa(urls: Sequence[str], timeout: float = NLU_WAIT_SECONDS) -> bool:
    """Waits until one of the Rasa servers answers; returns whether one did."""
    from bot.processes import answers, wait_until

    log.info("waiting for Rasa to load its model before handling messages")
    ready = wait_until(lambda: any(answers(f"{url.rstrip('/')}/") for url in urls), timeout, 0.2)
    if ready:
        log.info("Rasa answers: handling messages")
    else:
        log.error("Rasa did not answer in %.0f s: handling messages without it", timeout)
    return ready
