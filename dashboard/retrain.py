"""Retraining the NLU model from the dashboard, in the background, with visible progress.

The steps are `make train`'s: build the training data (the catalogue in `data/` plus the
examples from the NLU review), run `rasa train nlu` (the command is configurable, so tests
use a small fake), then ask every Rasa server to load the new model (`PUT /model`) and make it
the model `bot run` starts with. Progress lives in `nlu_training_runs`, so any web process
shows it; one run at a time (a unique slot), and a run whose process died is taken over.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot.db.models import NluTrainingRun
from bot.runtime import Runtime
from bot.settings import Settings
from nlu.catalogue import Catalogue
from nlu.training import database_examples, write_training_data

log = logging.getLogger(__name__)

ACTIVE = "active"
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
# A run whose heartbeat is older than this lost its process (a restart): it may be replaced.
STALE = timedelta(minutes=2)
LOG_LINES = 60
# Rasa logs one of these per pipeline component it trains (or takes from its cache).
COMPONENT_DONE = re.compile(r"(Finished training|Restored) component '([^']+)'")
LOAD_TIMEOUT = 120


class RetrainBusy(RuntimeError):
    """A retraining is already under way."""


def pipeline_size(config_file: Path) -> int:
    """How many components the Rasa pipeline has (for the progress bar)."""
    try:
        pipeline = yaml.safe_load(config_file.read_text(encoding="utf-8")).get("pipeline")
    except (OSError, AttributeError, yaml.YAMLError):
        return 4
    return len(pipeline) if isinstance(pipeline, list) and pipeline else 4


class Trainer:
    """Starts retraining runs and carries them out on a background thread."""

    def __init__(
        self,
        runtime: Runtime,
        settings: Settings,
        catalogue_loader: Callable[[], Catalogue] = Catalogue.load,
    ) -> None:
        """`runtime` gives the database and the clock; `settings` (the application's) the
        command, the model folder and the Rasa servers."""
        self.runtime = runtime
        self.settings = settings
        self.load_catalogue = catalogue_loader
        self.thread: threading.Thread | None = None

    # -- starting ---------------------------------------------------------------------------

    def start(self, started_by: str) -> int:
        """Records a new run and starts it in the background; returns its id.

        Raises:
            RetrainBusy: another run is queued or running (and its process is alive).
        """
        now = self.runtime.clock()
        db = self.runtime.db
        with db.write() as session:
            # A run whose process died (no heartbeat) gives up its slot.
            session.execute(
                update(NluTrainingRun)
                .where(
                    NluTrainingRun.slot == ACTIVE,
                    NluTrainingRun.heartbeat_at < now - STALE,
                )
                .values(
                    slot=None,
                    status=FAILED,
                    error="the process running it stopped (a restart?)",
                    finished_at=now,
                )
            )
        try:
            with db.write() as session:
                run = NluTrainingRun(
                    status=QUEUED,
                    slot=ACTIVE,
                    stage="queued",
                    progress=0,
                    model_name="nlu",
                    examples=0,
                    started_by=started_by,
                    created_at=now,
                    heartbeat_at=now,
                )
                session.add(run)
                session.flush()
                run_id = run.id
                run.model_name = f"nlu-{now:%Y%m%d-%H%M%S}-{run_id}"
        except IntegrityError:
            raise RetrainBusy("a retraining is already under way") from None
        self.thread = threading.Thread(
            target=self.run, args=(run_id,), name=f"retrain-{run_id}", daemon=True
        )
        self.thread.start()
        return run_id

    # -- running ----------------------------------------------------------------------------

    def _update(self, run_id: int, **values: Any) -> None:
        values.setdefault("heartbeat_at", self.runtime.clock())
        with self.runtime.db.write() as session:
            session.execute(
                update(NluTrainingRun).where(NluTrainingRun.id == run_id).values(**values)
            )

    def run(self, run_id: int) -> None:
        """Carries out one run (on the background thread); never raises."""
        try:
            self._run(run_id)
        except Exception as exc:
            log.exception("retraining %s failed", run_id)
            self._finish(run_id, FAILED, error=f"{type(exc).__name__}: {exc}")

    def _finish(self, run_id: int, status: str, **values: Any) -> None:
        now = self.runtime.clock()
        self._update(run_id, status=status, slot=None, finished_at=now, **values)

    def _run(self, run_id: int) -> None:
        with self.runtime.db.read() as session:
            name = session.scalar(
                select(NluTrainingRun.model_name).where(NluTrainingRun.id == run_id)
            )
        assert name is not None
        now = self.runtime.clock()
        self._update(
            run_id, status=RUNNING, stage="building training data", progress=5, started_at=now
        )
        work = self.settings.var_dir / "nlu" / f"run-{run_id}"
        extra = database_examples(self.settings.database_url)
        nlu_file = write_training_data(self.load_catalogue(), work, extra)
        self._update(
            run_id, stage="training", progress=10, examples=sum(len(v) for v in extra.values())
        )
        out = self.settings.nlu_models_dir.resolve()
        out.mkdir(parents=True, exist_ok=True)
        ok, tail = self._train(run_id, nlu_file.resolve(), out, name)
        if not ok:
            self._finish(run_id, FAILED, error="training failed: see the log", log=tail)
            return
        model = out / f"{name}.tar.gz"
        if not model.is_file():
            self._finish(run_id, FAILED, error=f"training left no model at {model}", log=tail)
            return
        self._update(
            run_id, stage="loading the new model", progress=90, model_path=str(model), log=tail
        )
        problems = self._load(model)
        if problems:
            self._finish(run_id, FAILED, error="; ".join(problems), log=tail)
            return
        self._install(model)
        servers = len(self.settings.rasa_urls)
        stage = (
            f"in service on {servers} Rasa server{'s' if servers != 1 else ''}"
            if servers
            else "saved (no Rasa server configured)"
        )
        self._finish(run_id, SUCCEEDED, stage=stage, progress=100)
        shutil.rmtree(work, ignore_errors=True)

    def _command(self, nlu_file: Path, out: Path, name: str) -> list[str]:
        values = {"{nlu}": str(nlu_file), "{out}": str(out), "{name}": name}
        command = []
        for part in self.settings.nlu_train_command:
            for placeholder, value in values.items():  # only these: other braces stay as written
                part = part.replace(placeholder, value)
            command.append(part)
        return command

    def _train(self, run_id: int, nlu_file: Path, out: Path, name: str) -> tuple[bool, str]:
        """Runs the training command; streams its output into the run's log and progress."""
        command = self._command(nlu_file, out, name)
        total = pipeline_size(self.settings.nlu_train_cwd / "config.yml")
        lines: deque[str] = deque(maxlen=LOG_LINES)
        try:
            process = subprocess.Popen(  # noqa: S603 - the configured trainer, no shell
                command,
                cwd=self.settings.nlu_train_cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except OSError as exc:
            return False, f"could not start {command[0]}: {exc} (is Rasa installed? make rasa)"
        with process:  # closes the pipe and reaps the process however this ends
            return self._follow(run_id, process, total, lines)

    def _follow(
        self, run_id: int, process: subprocess.Popen[str], total: int, lines: deque[str]
    ) -> tuple[bool, str]:
        """Reads the trainer's output until it ends or runs out of time."""
        output: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                output.put(line.rstrip("\n"))
            output.put(None)

        threading.Thread(target=pump, name=f"retrain-{run_id}-output", daemon=True).start()
        deadline = time.monotonic() + self.settings.nlu_train_timeout_seconds
        finished_components = 0
        last_update = 0.0
        ended = False
        while not ended:
            if time.monotonic() > deadline:
                process.kill()
                lines.append(f"stopped after {self.settings.nlu_train_timeout_seconds} s")
                return False, "\n".join(lines)
            try:
                line = output.get(timeout=1)
            except queue.Empty:
                line = ""
            if line is None:
                ended = True
            elif line:
                lines.append(line)
                if COMPONENT_DONE.search(line):
                    finished_components += 1
            if ended or time.monotonic() - last_update >= 1:
                last_update = time.monotonic()
                progress = 10 + int(75 * min(finished_components, total) / total)
                self._update(run_id, progress=progress, log="\n".join(lines))
        code = process.wait()
        if code != 0:
            lines.append(f"exit code {code}")
        return code == 0, "\n".join(lines)

    def _load(self, model: Path) -> list[str]:
        """Asks every Rasa server to load `model`; returns what went wrong."""
        problems = []
        token = self.settings.rasa_token
        # Rasa started with --auth-token wants it on every API call (`?token=`).
        params = {"token": token} if token else {}
        for url in self.settings.rasa_urls:
            try:
                response = requests.put(
                    f"{url}/model",
                    params=params,
                    json={"model_file": str(model)},
                    timeout=LOAD_TIMEOUT,
                )
            except requests.RequestException as exc:
                problems.append(f"{url} could not be reached: {type(exc).__name__}")
                continue
            if response.status_code >= 300:
                problems.append(f"{url} refused the model: HTTP {response.status_code}")
        return problems

    def _install(self, model: Path) -> None:
        """Makes `model` the one `bot run` starts Rasa with (an atomic replace)."""
        target = self.settings.nlu_current_model
        if target.resolve() == model.resolve():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.new")
        shutil.copyfile(model, staging)
        os.replace(staging, target)


def latest_runs(runtime: Runtime, limit: int = 5) -> list[NluTrainingRun]:
    """The most recent retraining runs, newest first."""
    with runtime.db.read() as session:
        return list(
            session.scalars(select(NluTrainingRun).order_by(NluTrainingRun.id.desc()).limit(limit))
        )


def last_success(runtime: Runtime) -> datetime | None:
    """When the last successful retraining started (examples after it are new)."""
    with runtime.db.read() as session:
        return session.scalar(
            select(NluTrainingRun.created_at)
            .where(NluTrainingRun.status == SUCCEEDED)
            .order_by(NluTrainingRun.id.desc())
            .limit(1)
        )
