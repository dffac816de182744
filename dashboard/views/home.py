"""The overview page (coordinators and admins) and where `/dashboard/` sends each role."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import redirect, render_template, url_for
from werkzeug.wrappers import Response

from bot.db.models import RouteEvent
from bot.failover import RouteStatus, recent_events, statuses
from dashboard.accounts import ROLES, STAFF
from dashboard.blueprint import account, bp, requires, runtime, state
from dashboard.charts import Series, bar_chart, column_chart
from dashboard.overview import Overview, compute
from dashboard.views.conversations import topics

CACHE_SECONDS = 60


def _overview() -> Overview:
    """The figures, computed at most once a minute per process."""
    cached = state().cache.get("overview")
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        figures: Overview = cached[1]
        return figures
    rt = runtime()
    with rt.db.read() as session:
        figures = compute(session, rt.clock(), rt.settings.zone)
    state().cache["overview"] = (time.monotonic(), figures)
    return figures


@bp.get("/")
@requires(*ROLES)
def home() -> str | Response:
    """Coordinators see the overview; mobilizers go to their conversations."""
    if account().role not in STAFF:
        return redirect(url_for("dashboard.conversations"))
    figures = _overview()
    labels = [d.strftime("%m-%d") for d in figures.days]
    names = topics()
    return render_template(
        "dashboard/home.html",
        figures=figures,
        messages_chart=column_chart(
            labels,
            [
                Series("received", "series-in", figures.inbound),
                Series("sent", "series-out", figures.outbound),
            ],
            "Messages per day",
        ),
        consent_chart=column_chart(
            labels,
            [
                Series("opt-ins", "series-in", figures.opt_ins),
                Series("opt-outs", "series-bad", figures.opt_outs),
            ],
            "Opt-ins and opt-outs per day",
        ),
        unanswered_chart=column_chart(
            labels,
            [Series("unanswered %", "series-warn", figures.daily_unanswered_rate)],
            "Unanswered rate per day (%)",
        ),
        topics_chart=bar_chart(
            [(names.get(intent, intent), count) for intent, count in figures.top_topics],
            "Top topics",
        ),
        channels=channels_panel(),
    )


@dataclass(frozen=True)
class ChannelsPanel:
    """The overview's Channels panel: each route's state and the latest switches."""

    routes: list[RouteStatus]
    events: list[RouteEvent]


def channels_panel() -> ChannelsPanel:
    """Read live (two small tables): an outage shows at once, not a minute later."""
    rt = runtime()
    known = {s.route: s for s in statuses(rt.db)}
    order = [str(c) for r in rt.routes.order if (c := rt.routes.canonical(r)) is not None]
    names = [*dict.fromkeys([*(s for s in known if not known[s].up), *order, *known])]
    rows = [known.get(n) or RouteStatus(n, True, None, 0, None, None) for n in names]
    return ChannelsPanel(rows, recent_events(rt.db))
