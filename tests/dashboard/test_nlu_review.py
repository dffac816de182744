"""The NLU review: assign, out of scope, dismiss; retraining in the background and the switch
to the new model (with a fake trainer and a fake Rasa: no real training here)."""

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
from bot.db.models import NluExample, NluTrainingRun, UnansweredQuestion, utcnow
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from dashboard.retrain import ACTIVE, RetrainBusy
from nlu.catalogue import Catalogue
from nlu.training import database_examples, rasa_nlu_yaml
from testkit.fake_rasa import FakeRasa
from tests.dashboard.conftest import Accounts, _accounts
from tests.dashboard.support import FAKE_TRAINER, FakeModelServer, csrf_token, signed_in
from tests.support.clock import FakeClock
from tests.support.phone import Phone


def queue_ids(runtime: Runtime) -> list[tuple[int, str]]:
    with runtime.db.read() as session:
        rows = session.execute(
            select(UnansweredQuestion.id, UnansweredQuestion.status).order_by(UnansweredQuestion.id)
        ).all()
    return [(r.id, r.status) for r in rows]


def test_assign_out_of_scope_and_dismiss(
    nlu_app: Flask,
    nlu_runtime: Runtime,
    nlu_accounts: Accounts,
    member: Phone,
    rasa: FakeRasa,
) -> None:
    rasa.answers["how to start a group?"] = [("faq_steps", 0.45), ("faq_meaning", 0.3)]
    member.send("how to start a group?")
    member.send("१. के गर्ने?")  # Devanagari, out of scope by default
    member.send("who won the cricket")
    [(first, _), (second, _), (third, _)] = queue_ids(nlu_runtime)
    client = signed_in(nlu_app, nlu_runtime.db, nlu_accounts.coordinator)
    page = client.get("/dashboard/nlu").get_data(as_text=True)
    assert "Waiting for review (3)" in page
    # The model's best FAQ guess is preselected.
    assert 'value="faq_steps" selected' in page
    token = csrf_token(client, "/dashboard/nlu")
    done = client.post(
        f"/dashboard/nlu/{first}/assign",
        data={"csrf_token": token, "intent": "faq_steps"},
        follow_redirects=True,
    )
    assert "added as an example of faq_steps" in done.get_data(as_text=True)
    client.post(
        f"/dashboard/nlu/{second}/assign", data={"csrf_token": token, "intent": "faq_meaning"}
    )
    client.post(f"/dashboard/nlu/{third}/out-of-scope", data={"csrf_token": token})
    again = client.post(
        f"/dashboard/nlu/{third}/dismiss", data={"csrf_token": token}, follow_redirects=True
    )
    assert "already out of scope" in again.get_data(as_text=True)
    unknown = client.post(
        f"/dashboard/nlu/{first}/assign", data={"csrf_token": token, "intent": "faq_x"}
    )
    assert unknown.status_code == 400
    assert queue_ids(nlu_runtime) == [
        (first, "assigned"),
        (second, "assigned"),
        (third, "out_of_scope"),
    ]
    with nlu_runtime.db.read() as session:
        examples = session.execute(
            select(NluExample.text, NluExample.intent, NluExample.language).order_by(NluExample.id)
        ).all()
    assert [tuple(e) for e in examples] == [
        ("how to start a group?", "faq_steps", "en"),
        ("१. के गर्ने?", "faq_meaning", "ne"),
        ("who won the cricket", "out_of_scope", "en"),
    ]
    assert "Waiting for review (0)" in client.get("/dashboard/nlu").get_data(as_text=True)
    # Retraining includes them, each under its intent.
    extra = database_examples(nlu_runtime.settings.database_url)
    document = yaml.safe_load(rasa_nlu_yaml(Catalogue.load(), extra))
    by_intent = {block["intent"]: block["examples"] for block in document["nlu"]}
    assert "- how to start a group?\n" in by_intent["faq_steps"]
    assert "- who won the cricket\n" in by_intent["out_of_scope"]


def test_texts_the_catalogue_gives_another_intent_are_refused(
    nlu_app: Flask, nlu_runtime: Runtime, nlu_accounts: Accounts, member: Phone
) -> None:
    catalogue = Catalogue.load()
    taken = catalogue.topics["meaning"].examples["en"][0]
    member.send(taken)  # the fake model calls everything out of scope
    [(item, _)] = queue_ids(nlu_runtime)
    client = signed_in(nlu_app, nlu_runtime.db, nlu_accounts.coordinator)
    token = csrf_token(client, "/dashboard/nlu")
    refused = client.post(
        f"/dashboard/nlu/{item}/assign",
        data={"csrf_token": token, "intent": "faq_steps"},
        follow_redirects=True,
    )
    assert "already has this text as faq_meaning" in refused.get_data(as_text=True)
    assert queue_ids(nlu_runtime) == [(item, "open")]


def test_the_builder_leaves_out_conflicting_and_unknown_examples() -> None:
    catalogue = Catalogue.load()
    owned = catalogue.topics["meaning"].examples["en"][0]
    document = yaml.safe_load(
        rasa_nlu_yaml(
            catalogue,
            {"faq_steps": [owned.upper(), "  brand   new text "], "faq_gone": ["orphan"]},
        )
    )
    by_intent = {block["intent"]: block["examples"] for block in document["nlu"]}
    assert "- brand new text\n" in by_intent["faq_steps"]
    assert owned.upper() not in by_intent["faq_steps"]
    assert "faq_gone" not in by_intent
    assert all("orphan" not in examples for examples in by_intent.values())


@pytest.fixture
def training(
    request: pytest.FixtureRequest, env: dict[str, str], clock: FakeClock, tmp_path: Path,
    model_server: FakeModelServer, password_hash: str,
) -> Iterator[tuple[Flask, Runtime, Accounts]]:  # fmt: skip
    """An application whose Rasa is the fake model server and whose trainer is a script
    that succeeds ("ok", the default) or fails ("fail": parametrize indirectly)."""
    outcome = getattr(request, "param", "ok")
    command = [sys.executable, "-c", FAKE_TRAINER, "{nlu}", "{out}", "{name}", outcome]
    settings = Settings.from_mapping(
        env
        | {
            "RASA_URL": model_server.url,
            "NLU_TRAIN_COMMAND": shlex.join(command),
            "NLU_MODELS_DIR": str(tmp_path / "models"),
        }
    )
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    app = create_app(settings, runtime)
    state = app.extensions["dashboard"]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "nlu.tar.gz").write_text("the old model")
    yield app, runtime, _accounts(runtime, password_hash)
    if state.trainer is not None and state.trainer.thread is not None:
        state.trainer.thread.join(timeout=20)
    runtime.close()


def _retrain(app: Flask, runtime: Runtime, user: int) -> NluTrainingRun:
    client = signed_in(app, runtime.db, user)
    started = client.post(
        "/dashboard/nlu/retrain", data={"csrf_token": csrf_token(client, "/dashboard/nlu")}
    )
    assert started.status_code == 303 and "/dashboard/nlu/runs/" in started.location
    page = client.get(started.location).get_data(as_text=True)
    assert 'http-equiv="refresh"' in page  # refreshes itself while it runs
    trainer = app.extensions["dashboard"].trainer
    trainer.thread.join(timeout=20)
    with runtime.db.read() as session:
        run = session.scalar(select(NluTrainingRun).order_by(NluTrainingRun.id.desc()))
    assert run is not None
    finished = client.get(started.location).get_data(as_text=True)
    assert 'http-equiv="refresh"' not in finished and run.status in finished
    return run


def test_retraining_switches_the_running_service_to_the_new_model(
    training: tuple[Flask, Runtime, Accounts], model_server: FakeModelServer, tmp_path: Path
) -> None:
    app, runtime, accounts = training
    with runtime.db.write() as session:
        session.add(
            NluExample(
                text="how do I form a users committee", intent="faq_steps", language="en",
                created_by="Coord", created_at=utcnow(),
            )
        )  # fmt: skip
    run = _retrain(app, runtime, accounts.coordinator)
    assert (run.status, run.progress, run.examples, run.slot) == ("succeeded", 100, 1, None)
    assert "Finished training component 'LogisticRegression'" in (run.log or "")
    assert run.stage == "in service on 1 Rasa server"
    model = tmp_path / "models" / f"{run.model_name}.tar.gz"
    assert model_server.loaded == [str(model)]
    installed = (tmp_path / "models" / "nlu.tar.gz").read_text()
    assert "how do I form a users committee" in installed  # the example was trained on
    assert installed == model.read_text()


@pytest.mark.parametrize("training", ["fail"], indirect=True)
def test_a_failed_training_keeps_the_old_model(
    training: tuple[Flask, Runtime, Accounts], model_server: FakeModelServer, tmp_path: Path
) -> None:
    app, runtime, accounts = training
    run = _retrain(app, runtime, accounts.admin)
    assert run.status == "failed" and run.slot is None
    assert "ValueError: something went wrong" in (run.log or "")
    assert "exit code 1" in (run.log or "")
    assert model_server.loaded == []
    assert (tmp_path / "models" / "nlu.tar.gz").read_text() == "the old model"


def test_a_rasa_that_refuses_the_model_fails_the_run(
    training: tuple[Flask, Runtime, Accounts], model_server: FakeModelServer, tmp_path: Path
) -> None:
    app, runtime, accounts = training
    model_server.status = 500
    run = _retrain(app, runtime, accounts.coordinator)
    assert run.status == "failed" and "refused the model: HTTP 500" in (run.error or "")
    assert (tmp_path / "models" / "nlu.tar.gz").read_text() == "the old model"


def test_one_retraining_at_a_time_unless_its_process_died(
    training: tuple[Flask, Runtime, Accounts], clock: FakeClock
) -> None:
    app, runtime, accounts = training
    with runtime.db.write() as session:
        session.add(
            NluTrainingRun(
                status="running", slot=ACTIVE, stage="training", progress=40, model_name="old",
                examples=0, started_by="Other", created_at=clock.now, heartbeat_at=clock.now,
            )
        )  # fmt: skip
    with app.app_context():
        from dashboard.views.nlu import trainer

        with pytest.raises(RetrainBusy):
            trainer().start("Coord")
        client = signed_in(app, runtime.db, accounts.coordinator)
        busy = client.post(
            "/dashboard/nlu/retrain",
            data={"csrf_token": csrf_token(client, "/dashboard/nlu")},
            follow_redirects=True,
        )
        assert "already under way" in busy.get_data(as_text=True)
        clock.advance(600)  # no heartbeat for ten minutes: its process is gone
        run_id = trainer().start("Coord")
        trainer().thread.join(timeout=20)  # type: ignore[union-attr]
    with runtime.db.read() as session:
        runs = session.execute(
            select(NluTrainingRun.id, NluTrainingRun.status).order_by(NluTrainingRun.id)
        ).all()
    assert [r.status for r in runs] == ["failed", "succeeded"]
    assert runs[-1].id == run_id


def test_retraining_loads_the_model_with_the_rasa_token(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 12: `PUT /model` on a Rasa started with --auth-token needs the token too."""
    from types import SimpleNamespace

    from dashboard.retrain import Trainer
    from testkit.fake_rasa import FakeRasa

    rasa = FakeRasa().start()
    try:
        rasa.token = "rasa-token-0123456789"
        settings = Settings.from_mapping(
            env | {"RASA_URL": rasa.url, "RASA_TOKEN": "rasa-token-0123456789"}
        )
        trainer = Trainer(SimpleNamespace(), settings)  # type: ignore[arg-type]
        model = tmp_path / "nlu-new.tar.gz"
        assert trainer._load(model) == []
        assert rasa.loaded == [str(model)] and rasa.refused == 0
    finally:
        rasa.stop()
