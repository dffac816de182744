"""`bot nlu` (training data, the held-out evaluation) and `bot faq` (answer lengths)."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.common import settings_or_exit, start_rasa
from bot.processes import rasa_available, rasa_token, stop
from bot.settings import SettingsError

DATA_OPTION = click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(path_type=Path, file_okay=False),
    help="content folder (default: data/)",
)


@click.group()
def nlu() -> None:
    """NLU training data and model commands."""


@nlu.command("build")
@click.option("--out", default="build/nlu", show_default=True, type=click.Path(path_type=Path))
@DATA_OPTION
def nlu_build(out: Path, data_dir: Path | None) -> None:
    """Checks the FAQ catalogue and writes Rasa's training data from it."""
    from sqlalchemy.exc import OperationalError

    from bot.core.content import ContentError
    from nlu.catalogue import Catalogue
    from nlu.training import database_examples, write_training_data

    try:
        catalogue = Catalogue.load(data_dir) if data_dir else Catalogue.load()
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None
    # Examples coordinators made in the dashboard's NLU review join the files' examples.
    try:
        extra = database_examples(settings_or_exit().database_url)
    except (OperationalError, SettingsError):
        extra = {}
    path = write_training_data(catalogue, out, extra)
    groups = [t.examples for t in catalogue.topics.values()]
    groups += [i.examples for i in catalogue.intents.values()]
    examples = sum(len(texts) for group in groups for texts in group.values())
    click.echo(
        f"{path}: {len(catalogue.topics)} FAQ topics, {len(catalogue.intents)} other intents, "
        f"{examples} examples"
    )


@nlu.command("eval")
@click.option("--rasa-port", default=5006, show_default=True, type=int)
@click.option(
    "--set",
    "sets",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="evaluation set(s) (default: nlu/eval.yml and nlu/heldout.yml)",
)
@click.option(
    "--fallback", is_flag=True, help="score the bot with Rasa down: the keyword matcher alone"
)
def nlu_eval(rasa_port: int, sets: tuple[Path, ...], fallback: bool) -> None:
    """Scores the model end to end on the held-out sets (starts Rasa unless RASA_URL is set)."""
    from bot.core.content import ContentError
    from bot.core.faq import NluPolicy
    from bot.core.understanding import NluUnavailable, Understanding
    from nlu.catalogue import Catalogue
    from nlu.client import RasaClient
    from nlu.evaluate import EVAL_SETS, evaluate, load_eval_set, report

    try:
        items = {path: load_eval_set(path) for path in sets or EVAL_SETS}
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None
    topics = Catalogue.load().topics
    if fallback:

        def down(text: str) -> Understanding:
            raise NluUnavailable("scoring the fallback alone")

        for path, chosen in items.items():
            click.echo(f"{path.name}, Rasa down (keyword matcher alone):")
            click.echo(report(evaluate(down, topics, chosen, NluPolicy())))
        return
    settings = settings_or_exit()
    rasa = None
    urls = list(settings.rasa_urls)
    token = settings.rasa_token
    if not urls:
        if not rasa_available():
            raise click.ClickException("no model: run `make train` first")
        token = rasa_token(settings)
        rasa = start_rasa(rasa_port, token)
        urls = [f"http://127.0.0.1:{rasa_port}"]
    try:
        client = RasaClient(urls, timeout=10, token=token)
        for path, chosen in items.items():
            click.echo(f"{path.name}:")
            click.echo(report(evaluate(client.parse, topics, chosen, NluPolicy())))
    finally:
        if rasa is not None:
            stop([rasa])


@click.group()
def faq() -> None:
    """FAQ content commands."""


@faq.command("report")
@DATA_OPTION
def faq_report(data_dir: Path | None) -> None:
    """Shows every FAQ answer's length, SMS encoding and segment count."""
    from bot.core.content import ContentError
    from bot.core.segments import count_segments
    from nlu.catalogue import Catalogue

    try:
        catalogue = Catalogue.load(data_dir) if data_dir else Catalogue.load()
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{'topic':<16} {'part':<7} {'lang':<4} {'chars':>5}  {'encoding':<8} {'segments':>8}"
    )
    for topic in catalogue.topics.values():
        parts = [("answer", topic.answer), ("more", topic.more or {})]
        for part, texts in parts:
            for language, text in texts.items():
                count = count_segments(text)
                click.echo(
                    f"{topic.key:<16} {part:<7} {language.value:<4} {len(text):>5}  "
                    f"{count.encoding:<8} {count.segments:>8}"
                )
