"""`bot scheduler`: the broadcast scheduler (one active, the others wait)."""

from __future__ import annotations

import signal
import threading

import click

from bot.cli.common import settings_or_exit


@click.command()
@click.option("--poll", default=5.0, show_default=True, help="seconds between schedule checks")
def scheduler(poll: float) -> None:
    """Runs the broadcast scheduler. Start several: exactly one is active, the rest wait."""
    from bot.broadcasts.scheduler import BroadcastScheduler
    from bot.runtime import Runtime

    runtime = Runtime(settings_or_exit())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        BroadcastScheduler(runtime.broadcasts, poll_seconds=poll).run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        runtime.close()
