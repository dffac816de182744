"""The NLU review page: the queue of unanswered questions, examples, and retraining."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import delete, select
from werkzeug.wrappers import Response
from wtforms import SelectChoice, SelectField

from bot.db.models import NluExample, NluTrainingRun
from dashboard.accounts import STAFF
from dashboard.audit import record
from dashboard.blueprint import account, arg_choice, arg_int, bp, requires, runtime, state
from dashboard.nlu_review import (
    ASSIGNED,
    DISMISSED,
    OUT_OF_SCOPE,
    REASONS,
    ReviewError,
    decide,
    new_examples,
    open_count,
    queue,
)
from dashboard.retrain import QUEUED, RUNNING, RetrainBusy, Trainer, last_success, latest_runs
from dashboard.views.conversations import topics
from nlu.catalogue import Catalogue


class AssignForm(FlaskForm):
    intent = SelectField("Topic")


def trainer() -> Trainer:
    """This application's trainer (built on first use)."""
    current = state()
    if current.trainer is None:
        current.trainer = Trainer(runtime(), current.settings)
    trainer: Trainer = current.trainer
    return trainer


def _catalogue() -> Catalogue:
    current = state()
    cached = current.cache.get("catalogue")
    if cached is None:
        cached = (0.0, trainer().load_catalogue())
        current.cache["catalogue"] = cached
    catalogue: Catalogue = cached[1]
    return catalogue


@bp.get("/nlu")
@requires(*STAFF)
def nlu_review() -> str:
    """Questions the bot did not answer, with the model's candidates, and retraining."""
    reason = arg_choice("reason", REASONS)
    before = arg_int("before", minimum=1)
    rt = runtime()
    with rt.db.read() as session:
        items, next_before = queue(session, reason, before)
        waiting = open_count(session)
        since = last_success(rt)
        fresh = new_examples(session, since)
        examples = session.scalars(
            select(NluExample).order_by(NluExample.id.desc()).limit(20)
        ).all()
    runs = latest_runs(rt)
    active = any(r.status in (QUEUED, RUNNING) for r in runs)
    names = topics()
    # Each question's form starts on the model's best FAQ guess.
    best_topic = {
        item.id: next((c[0] for c in item.candidates if c and c[0] in names), None)
        for item in items
    }
    return render_template(
        "dashboard/nlu.html",
        best_topic=best_topic,
        items=items,
        next_before=next_before,
        waiting=waiting,
        reasons=REASONS,
        topics=names,
        form=AssignForm(),
        fresh=fresh,
        examples=examples,
        runs=runs,
        active=active,
        rasa_servers=len(rt.settings.rasa_urls),
    )


def _decide(item_id: int, decision: str, intent: str | None = None) -> Response:
    try:
        with runtime().db.write() as session:
            outcome = decide(session, _catalogue(), account(), item_id, decision, intent)
    except ReviewError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Question {item_id}: {outcome}.", "ok")
    return redirect(url_for("dashboard.nlu_review"), code=303)


@bp.post("/nlu/<int:item_id>/assign")
@requires(*STAFF)
def nlu_assign(item_id: int) -> Response:
    """Makes the question's text a training example of a FAQ topic."""
    form = AssignForm()
    form.intent.choices = [SelectChoice(i, q) for i, q in topics().items()]
    if not form.validate_on_submit():
        abort(400, description="choose one of the FAQ topics")
    return _decide(item_id, ASSIGNED, form.intent.data)


@bp.post("/nlu/<int:item_id>/out-of-scope")
@requires(*STAFF)
def nlu_out_of_scope(item_id: int) -> Response:
    """Teaches the model that questions like this one are out of scope."""
    return _decide(item_id, OUT_OF_SCOPE)


@bp.post("/nlu/<int:item_id>/dismiss")
@requires(*STAFF)
def nlu_dismiss(item_id: int) -> Response:
    """Takes the question off the queue without learning from it."""
    return _decide(item_id, DISMISSED)


@bp.post("/nlu/examples/<int:example_id>/delete")
@requires(*STAFF)
def nlu_example_delete(example_id: int) -> Response:
    """Removes a training example made by mistake (the next retraining leaves it out)."""
    with runtime().db.write() as session:
        example = session.get(NluExample, example_id)
        if example is None:
            abort(404)
        record(
            session,
            account().label,
            "nlu_example_deleted",
            {"example_id": example.id, "intent": example.intent, "text": example.text},
        )
        session.execute(delete(NluExample).where(NluExample.id == example_id))
    flash("Example removed.", "ok")
    return redirect(url_for("dashboard.nlu_review"), code=303)


@bp.post("/nlu/retrain")
@requires(*STAFF)
def nlu_retrain() -> Response:
    """Starts retraining in the background; the page shows its progress."""
    try:
        run_id = trainer().start(account().label)
    except RetrainBusy as exc:
        flash(f"{exc}.", "error")
        return redirect(url_for("dashboard.nlu_review"), code=303)
    with runtime().db.write() as session:
        record(session, account().label, "nlu_retrain", {"run_id": run_id})
    flash("Retraining started.", "ok")
    return redirect(url_for("dashboard.nlu_run", run_id=run_id), code=303)


@bp.get("/nlu/runs/<int:run_id>")
@requires(*STAFF)
def nlu_run(run_id: int) -> str:
    """One retraining's progress and log (the page refreshes itself while it runs)."""
    with runtime().db.read() as session:
        run = session.get(NluTrainingRun, run_id)
    if run is None:
        abort(404)
    return render_template(
        "dashboard/nlu_run.html", run=run, active=run.status in (QUEUED, RUNNING)
    )
