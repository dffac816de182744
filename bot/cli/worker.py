"""`bot worker`: the job queue consumer, with the sweeper that re-enqueues lost work."""

from __future__ import annotations

import logging
import os
import sys
import threading

import click

from bot.cli.common import settings_or_exit

log = logging.getLogger("bot")


@click.command()
@click.option("--sweep-every", default=10.0, show_default=True, help="seconds between sweeps")
@click.option(
    "--after-crash",
    is_flag=True,
    help="the only worker of this database died: take back what it held at once",
)
def worker(sweep_every: float, after_crash: bool) -> None:
    """Runs the job queue consumer: handles inbound messages and sends the outbox.

    WORKER_CONCURRENCY threads handle messages; up to SEND_CONCURRENCY provider calls overlap.
    With --after-crash (`bot run` restarting its one worker) the first sweep takes back the
    dead worker's sends and messages at once, not after CLAIM_SECONDS/RECOVER_AFTER_SECONDS;
    never give it while another worker uses the database (it would take that one's work).
    """
    from bot.runtime import Runtime

    settings = settings_or_exit()
    # Dozens of threads share the GIL here; a thread holding the database write gate must not
    # wait the default 5 ms for its turn, or every other writer on the machine waits too.
    sys.setswitchinterval(0.0005)
    if settings.worker_nice:
        # Webhook acknowledgements are the latency that matters; replies can trail by a few
        # milliseconds when the machine is busy (README: benchmark).
        os.nice(settings.worker_nice)
    runtime = Runtime(settings, background=True)
    stop = threading.Event()

    if after_crash:
        # Before the consumer runs: every claim found is the dead worker's, none ours yet.
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
    consumer = runtime.huey.create_consumer(
        workers=settings.worker_concurrency,
        worker_type="thread",
        periodic=False,
        # Polling the embedded queue: an idle thread waits at most 100 ms for new work.
        initial_delay=0.01,
        backoff=1.5,
        max_delay=0.1,
        check_worker_health=True,
    )
    try:
        consumer.run()
    finally:
        stop.set()
        runtime.close()
