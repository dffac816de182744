"""Jinja filters and globals the dashboard's templates use."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

from flask import Flask, request


def install_filters(app: Flask, zone: tzinfo) -> None:
    """Registers the filters on the application's Jinja environment."""

    def when(value: datetime | None) -> str:
        if value is None:
            return ""
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def percent(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    def confidence(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    def with_args(**changes: Any) -> str:
        """This page's query string with some arguments changed (None removes one)."""
        args = {k: v for k, v in request.args.items() if k not in changes}
        args.update({k: str(v) for k, v in changes.items() if v is not None})
        return "?" + urlencode(args) if args else "?"

    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["percent"] = percent
    app.jinja_env.filters["confidence"] = confidence
    app.jinja_env.globals["with_args"] = with_args
    app.jinja_env.globals["zone_name"] = str(zone)
