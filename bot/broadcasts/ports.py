"""What the broadcast service needs from the rest of the system, and nothing more.

Every function of bot.broadcasts (service, fan-out, sending, scheduler, the SMS desk) takes a
`BroadcastPorts`: a database, a clock, the settings, a task queue, a pacer, the bot's texts,
the surveys and a way to hand one message to the sender. `bot.runtime.Runtime` builds it once
(`runtime.broadcasts`); tests build their own or replace one port with `dataclasses.replace`.
The service never learns who wired it, so it never calls back into its caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.broadcasts.pacing import Pacer
from bot.channel_order import Routes
from bot.core.content import Texts
from bot.db.database import Database
from bot.settings import Settings


class BroadcastTasks(Protocol):
    """The job queue as broadcasts use it: a worker plans a run, then sends it in slices."""

    def enqueue_plan(self, run_id: int) -> None:
        """Asks a worker to plan run `run_id` (fan-out); never raises."""
        ...

    def enqueue_send(
        self, run_id: int, token: datetime | None = None, at: datetime | None = None
    ) -> None:
        """Asks a worker to send the next slice of run `run_id` (at `at`, if given)."""
        ...


class Surveys(Protocol):
    """The surveys a broadcast may invite to (flows.registry.FlowBook)."""

    @property
    def default_survey_key(self) -> str | None: ...

    def survey(self, key: str | None = None) -> Any:
        """The current survey named `key` (the default one when None), or None."""
        ...


@dataclass(frozen=True)
class BroadcastPorts:
    """The narrow ports the broadcast service works through.

    Attributes:
        db: the database (sessions and connections).
        clock: the current time, aware, in UTC.
        settings: the deployment's settings (time zone, quiet hours, pace, prices, limits).
        tasks: the job queue for planning and sending runs.
        pacer: the per-sender rate limiter (segments or messages per second).
        texts: the bot's texts (the survey invitation a broadcast may end with).
        surveys: the surveys a broadcast may invite to.
        send: hands one claimed broadcast message (by id) to the sender; False (and nothing
            sent) when the contact opted out meanwhile.
        routes: the installation's routes (CHANNEL_ORDER and its providers,
            bot/channel_order.py); None: CHANNEL_ORDER with provider names as written.
        owner: this worker's name on the messages it claims for sending (`bot worker
            --name`, bot/outbox.py reclaim_dead_claims); None: an unnamed worker.
    """

    db: Database
    clock: Callable[[], datetime]
    settings: Settings
    tasks: BroadcastTasks
    pacer: Pacer
    texts: Texts
    surveys: Surveys
    send: Callable[[int], bool]
    routes: Routes | None = None
    owner: str | None = None
