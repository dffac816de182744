"""`bot web`: the web application under gunicorn."""

from __future__ import annotations

import sys
from typing import Any

import click

from bot.cli.common import freeze_startup_heap, settings_or_exit

SWITCH_INTERVAL = 0.0005  # seconds; Python's default is 0.005


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per process")
def web(host: str, port: int, workers: int, threads: int) -> None:
    """Serves the web application (webhooks, simulator) under gunicorn."""
    from gunicorn.app.base import BaseApplication

    settings_or_exit()  # fail fast, naming the bad setting, before gunicorn forks
    # Imported once here, before gunicorn forks: its processes share those pages of memory
    # and each only builds the app (the objects that start threads are made after the fork).
    import bot.app  # noqa: F401

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("keepalive", 5)
            self.cfg.set("accesslog", None)
            # gunicorn 27's control socket (for `gunicornc`, which nothing here uses) would
            # live at one path per user ($HOME/.gunicorn/gunicorn.ctl), shared by every
            # `bot web` of that user: one more way in, and a clash between two services.
            self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:  # in each gunicorn process, after the fork
            from bot.app import create_app

            # The request threads hand each webhook's insert to one writer thread
            # (bot/inbox.py AcceptBatcher), which gives up the GIL at every SQLite call;
            # with the default 5 ms switch interval, busy request threads make it wait up
            # to 5 ms each time it wants the GIL back, and the acknowledgements with it.
            sys.setswitchinterval(SWITCH_INTERVAL)
            app = create_app(settings_or_exit())
            runtime = app.extensions["bot"]
            if runtime.settings.inbound_spool:
                # Started now, not at the first webhook: this process may be the one that
                # stores what the others spool, or take over when that one dies (bot/spool.py).
                runtime.spool()
            freeze_startup_heap()
            return app

    _App().run()
