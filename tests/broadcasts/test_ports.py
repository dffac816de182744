"""The broadcast service works through narrow ports, never through the whole Runtime (issue 14)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

import bot.broadcasts
from bot.broadcasts.desk import SmsDesk
from bot.broadcasts.service import Draft, confirm, create
from bot.db.models import BroadcastRun
from bot.runtime import Runtime
from tests.support.builders import add_contact


@dataclass
class RecordingTasks:
    """A task queue that only notes what it was asked to do."""

    asked: list[tuple[str, int]] = field(default_factory=list)

    def enqueue_plan(self, run_id: int) -> None:
        self.asked.append(("plan", run_id))

    def enqueue_send(
        self, run_id: int, token: datetime | None = None, at: datetime | None = None
    ) -> None:
        self.asked.append(("send", run_id))


def test_no_broadcast_module_imports_the_runtime() -> None:
    folder = Path(bot.broadcasts.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "bot.runtime", path.name
            elif isinstance(node, ast.Import):
                assert all(alias.name != "bot.runtime" for alias in node.names), path.name


def test_the_bot_gets_its_desk_on_the_runtimes_ports(unpaced_runtime: Runtime) -> None:
    desk = unpaced_runtime.bot.desk
    assert isinstance(desk, SmsDesk) and desk.ports is unpaced_runtime.broadcasts


def test_the_service_runs_on_ports_a_test_builds(unpaced_runtime: Runtime) -> None:
    add_contact(unpaced_runtime.db)
    tasks = RecordingTasks()
    ports = replace(unpaced_runtime.broadcasts, tasks=tasks)
    draft = Draft("Camp", "Camp on Sunday.", "आइतबार शिविर।")
    broadcast_id = create(ports, draft, created_by="c@example.org")
    assert confirm(ports, broadcast_id) == "sending"
    with ports.db.read() as session:
        run_id = session.scalars(select(BroadcastRun.id)).one()
    assert tasks.asked == [("plan", run_id)]  # handed to the queue, not planned inline
