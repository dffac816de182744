"""The learning loop, end to end (issue 13): a question is refused, a coordinator assigns it a
topic in the NLU review, retraining makes a new model, and the same question is answered.

Rasa is the project's fake at the edge, made to answer from the model it was last told to
load (`PUT /model`): the fake trainer writes the training data it was given as the "model",
so the answer after retraining comes from the chain review → training data → retrain →
load, not from a table the test fills in.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from flask import Flask
from sqlalchemy import select

from bot.app import create_app
from bot.db.models import UnansweredQuestion
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_rasa import FakeRasa
from testkit.fake_twilio import FakeTwilio
from tests.dashboard.conftest import Accounts, _accounts
from tests.dashboard.support import FAKE_TRAINER, csrf_token, signed_in
from tests.support.clock import FakeClock
from tests.support.phone import Phone

QUESTION = "which registers does a mobilizer keep after each tole gathering?"


class LoadedModel(dict[str, list[tuple[str, float]]]):
    """The fake Rasa's answers: the intent of an example of the model it loaded last (the
    training data the fake trainer wrote), out of scope for anything else."""

    def __init__(self, rasa: FakeRasa) -> None:
        super().__init__()
        self.rasa = rasa

    def get(  # type: ignore[override]
        self, text: str, default: list[tuple[str, float]] | None = None
    ) -> list[tuple[str, float]] | None:
        if not self.rasa.loaded:
            return default
        document = yaml.safe_load(Path(self.rasa.loaded[-1]).read_text(encoding="utf-8"))
        for block in document["nlu"]:
            examples = [line[2:] for line in block["examples"].splitlines()]
            if text in examples:
                return [(block["intent"], 0.95), ("out_of_scope", 0.03)]
        return default


@pytest.fixture
def loop(
    env: dict[str, str], clock: FakeClock, tmp_path: Path, rasa: FakeRasa,
    twilio: FakeTwilio, password_hash: str,
) -> Iterator[tuple[Flask, Runtime, Accounts, Phone]]:  # fmt: skip
    command = [sys.executable, "-c", FAKE_TRAINER, "{nlu}", "{out}", "{name}", "ok"]
    settings = Settings.from_mapping(
        env
        | {
            "RASA_URL": rasa.url,
            "NLU_TIMEOUT_MS": "2000",
            "NLU_TRAIN_COMMAND": shlex.join(command),
            "NLU_MODELS_DIR": str(tmp_path / "models"),
        }
    )
    rasa.answers = LoadedModel(rasa)
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    app = create_app(settings, runtime)
    app.config["TESTING"] = True
    yield app, runtime, _accounts(runtime, password_hash), Phone(app.test_client(), twilio)
    state = app.extensions["dashboard"]
    if state.trainer is not None and state.trainer.thread is not None:
        state.trainer.thread.join(timeout=20)
    runtime.close()


def test_a_refused_question_is_answered_after_review_and_retraining(
    loop: tuple[Flask, Runtime, Accounts, Phone], rasa: FakeRasa
) -> None:
    app, runtime, accounts, member = loop
    [refused] = member.send(QUESTION)
    assert "social mobilization" in refused and not rasa.loaded  # the polite refusal
    with runtime.db.read() as session:
        [item] = session.scalars(select(UnansweredQuestion)).all()
        item_id = item.id
        assert (item.reason, item.status) == ("out_of_scope", "open")

    client = signed_in(app, runtime.db, accounts.coordinator)
    assert QUESTION.replace("?", "") in client.get("/dashboard/nlu").get_data(as_text=True)
    token = csrf_token(client, "/dashboard/nlu")
    assigned = client.post(
        f"/dashboard/nlu/{item_id}/assign",
        data={"csrf_token": token, "intent": "faq_mobilizer_role"},
        follow_redirects=True,
    )
    assert "added as an example of faq_mobilizer_role" in assigned.get_data(as_text=True)
    assert member.send(QUESTION)[0] == refused  # not learnt before retraining

    started = client.post("/dashboard/nlu/retrain", data={"csrf_token": token})
    assert started.status_code == 303
    app.extensions["dashboard"].trainer.thread.join(timeout=20)
    assert "succeeded" in client.get(started.location).get_data(as_text=True)
    assert len(rasa.loaded) == 1  # the new model is in service

    [answer] = member.send(QUESTION)
    assert answer.startswith("A social mobilizer")
    with runtime.db.read() as session:
        status = session.scalar(select(UnansweredQuestion.status))
    assert status == "assigned"
