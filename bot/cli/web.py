"""`bot web`: the web application under gunicorn."""

from __future__ import annotations

from typing import Any

import click

from bot.cli.common import settings_or_exit


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per process")
def web(host: str, port: int, workers: int, threads: int) -> None:
    """Serves the web application (webhooks, simulator) under gunicorn."""
    from gunicorn.app.base import BaseApplication

    settings_or_exit()  # fail fast, naming the bad setting, before gunicorn forks

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

        def load(self) -> Any:
            from bot.app import create_app

            return create_app(settings_or_exit())

    _App().run()
