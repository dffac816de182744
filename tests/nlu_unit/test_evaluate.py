"""The evaluation arithmetic, with a scripted model."""

from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

import nlu
from bot.core.content import ContentError
from bot.core.faq import NluPolicy
from bot.core.understanding import Candidate, Understanding
from nlu.catalogue import Catalogue
from nlu.evaluate import (
    EVAL_SETS,
    HELDOUT_SET,
    cv_summary,
    evaluate,
    load_eval_set,
    main,
    report,
)
from testkit.fake_rasa import FakeRasa


def model(table: dict[str, tuple[str, float]]):  # type: ignore[no-untyped-def]
    def understand(text: str) -> Understanding:
        intent, confidence = table[text]
        return Understanding(intent, confidence, (Candidate(intent, confidence),))

    return understand


def test_scores_accuracy_refusals_and_wrong_answers() -> None:
    items = [
        {"text": "steps of mobilization", "expect": "steps", "lang": "en"},  # right answer
        {"text": "mobilization steps?", "expect": "steps", "lang": "en"},  # wrong topic
        {"text": "परिचालन?", "expect": "out_of_scope", "lang": "ne"},  # refused
        {"text": "परिचालनको तरिका", "expect": "out_of_scope", "lang": "ne"},  # answered: wrong
        {"text": "namaste", "expect": "greet", "lang": "romanized", "kind": "short"},
        {"text": "social mobilization kina", "expect": "meaning", "lang": "mixed"},  # offered
    ]
    understand = model({
        "steps of mobilization": ("faq_steps", 0.9), "mobilization steps?": ("faq_meaning", 0.9),
        "परिचालन?": ("out_of_scope", 0.9), "परिचालनको तरिका": ("faq_steps", 0.95),
        "namaste": ("greet", 0.9), "social mobilization kina": ("faq_meaning", 0.4),
    })  # fmt: skip
    tallies = evaluate(understand, {"steps", "meaning"}, items, NluPolicy())
    overall = tallies["all"]
    assert (overall.total, overall.correct, overall.wrong_answers) == (6, 3, 2)
    assert (overall.out_of_scope, overall.refused) == (2, 1)
    assert (overall.in_scope, overall.offered, overall.declined) == (3, 1, 0)
    assert (tallies["en"].correct, tallies["ne"].refused, tallies["kind:short"].correct) == (
        1,
        1,
        1,
    )
    table = report(tallies)
    assert "| all | 6 | 50.0% | 1/2 (50%) | 2 (33.3%) | 1 / 0 of 3 |" in table
    assert "| mixed | 1 | 0.0% | - | 0 (0.0%) | 1 / 0 of 1 |" in table
    assert table.index("| all |") < table.index("| kind:short |")


def test_the_faqs_shape_about_another_subject_is_scored_as_refused() -> None:
    """Through the bot: the policy refuses it whatever the model says (issue 13)."""
    items = [{"text": "why is hand washing important", "expect": "out_of_scope", "lang": "en"}]
    understand = model({"why is hand washing important": ("faq_importance", 0.97)})
    overall = evaluate(understand, {"importance"}, items, NluPolicy())["all"]
    assert (overall.correct, overall.refused, overall.wrong_answers) == (1, 1, 0)


def test_shipped_eval_set_loads_and_bad_one_is_named(tmp_path: Path) -> None:
    assert len(load_eval_set()) >= 90
    bad = tmp_path / "eval.yml"
    bad.write_text("- text: hi\n  expect: greet\n  lang: fr\n", encoding="utf-8")
    with pytest.raises(ContentError, match="item 1"):
        load_eval_set(bad)


def test_the_second_held_out_set_covers_what_issue_13_asks() -> None:
    items = load_eval_set(HELDOUT_SET)
    topics = set(Catalogue.load().topics)
    assert len(items) >= 200
    assert sum(i["expect"] == "out_of_scope" for i in items) >= 0.35 * len(items)
    assert {i["expect"] for i in items} >= topics
    assert {i["lang"] for i in items} == {"en", "ne", "romanized", "mixed"}
    kinds = {"long", "sms", "term-vs-meaning", "other-subject", "near-miss", "own-village",
             "variants", "short"}  # fmt: skip
    assert {i.get("kind") for i in items} == kinds


def _folded(text: str) -> str:
    """Case, punctuation and spacing folded: "Steps?" and "steps" are the same example."""
    return " ".join("".join(c if c.isalnum() or c.isspace() else " " for c in text).split())


@pytest.mark.parametrize("eval_set", EVAL_SETS, ids=lambda p: p.name)
def test_eval_sets_are_installed_with_the_package_and_are_not_training_data(
    eval_set: Path,
) -> None:
    """`bot nlu eval` works from an installed package (issue 14), on questions never trained;
    the comparison folds case and punctuation, so "Steps?" is not a new question."""
    package = Path(nlu.__file__).resolve().parent
    assert eval_set.parent == package and eval_set.is_file()
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["*"]
    assert any(fnmatch(eval_set.name, pattern) for pattern in patterns)
    catalogue = Catalogue.load()
    groups = [t.examples for t in catalogue.topics.values()]
    groups += [i.examples for i in catalogue.intents.values()]
    trained = {
        _folded(text.casefold()) for group in groups for texts in group.values() for text in texts
    }
    overlap = [
        item["text"]
        for item in load_eval_set(eval_set)
        if _folded(item["text"].casefold()) in trained
    ]
    assert overlap == []


def test_the_overlap_check_folds_case_and_punctuation() -> None:
    assert _folded("What are the Steps?".casefold()) == _folded("what are the steps".casefold())


# A tiny `rasa test nlu --cross-validation` output: sklearn's report as Rasa writes it, and the
# lines of Rasa's log that carry the fold means.
CV_REPORT = {
    "faq_steps": {
        "precision": 0.8, "recall": 0.8, "f1-score": 0.8, "support": 5,
        "confused_with": {"faq_strategies": 1},
    },
    "faq_strategies": {
        "precision": 0.75, "recall": 0.6, "f1-score": 0.667, "support": 5,
        "confused_with": {"faq_steps": 1, "out_of_scope": 1},
    },
    "out_of_scope": {
        "precision": 0.909, "recall": 1.0, "f1-score": 0.952, "support": 10, "confused_with": {},
    },
    "accuracy": 0.85,
    "macro avg": {"precision": 0.82, "recall": 0.8, "f1-score": 0.806, "support": 20},
    "weighted avg": {"precision": 0.84, "recall": 0.85, "f1-score": 0.843, "support": 20},
}  # fmt: skip
CV_LOG = """\
2026-11-25 00:29:29 INFO     rasa.model_testing  - CV evaluation (n=3)
2026-11-25 00:29:29 INFO     rasa.model_testing  - Intent evaluation results
2026-11-25 00:29:29 INFO     rasa.nlu.test  - train Accuracy: 0.990 (0.005)
2026-11-25 00:29:29 INFO     rasa.nlu.test  - train F1-score: 0.989 (0.006)
2026-11-25 00:29:29 INFO     rasa.nlu.test  - train Precision: 0.991 (0.004)
2026-11-25 00:29:29 INFO     rasa.nlu.test  - test Accuracy: 0.850 (0.021)
2026-11-25 00:29:29 INFO     rasa.nlu.test  - test F1-score: 0.840 (0.030)
"""


def write_cv(folder: Path, log: str | None = CV_LOG) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "intent_report.json").write_text(json.dumps(CV_REPORT), encoding="utf-8")
    if log is not None:
        (folder / "rasa.log").write_text(log, encoding="utf-8")
    return folder


def test_cv_summary_reads_rasa_reports(tmp_path: Path) -> None:
    summary = cv_summary(write_cv(tmp_path / "cv"), top=2)
    assert "20 examples, 3 folds" in summary
    assert "| train | 99.0% ± 0.5% | - | 98.9% ± 0.6% |" in summary
    assert "| test | 85.0% ± 2.1% | 80.6% | 84.3% ± 3.0% |" in summary
    # Most frequent first, ties by name; only `top` of them.
    assert summary.endswith("faq_steps → faq_strategies 1, faq_strategies → faq_steps 1")


def test_cv_summary_without_log_or_report(tmp_path: Path) -> None:
    summary = cv_summary(write_cv(tmp_path / "cv", log=None))
    assert "| train" not in summary
    assert "| test | 85.0% | 80.6% | 84.3% |" in summary
    assert "faq_strategies → out_of_scope 1" in summary
    with pytest.raises(ContentError, match="no cross-validation report"):
        cv_summary(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "intent_report.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ContentError, match="expected Rasa's intent report"):
        cv_summary(tmp_path / "bad")


def test_cv_command_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--cv", str(write_cv(tmp_path / "cv"))])
    assert "| test | 85.0%" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--cv", str(tmp_path / "missing")])
    assert exit_info.value.code == 1


def test_eval_command_scores_a_chosen_set_and_the_fallback_alone(
    tmp_path: Path, env: dict[str, str], rasa: FakeRasa, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bot nlu eval --set FILE` against a Rasa server; `--fallback` needs no Rasa at all."""
    from click.testing import CliRunner

    from bot.cli import main

    chosen = tmp_path / "mine.yml"
    chosen.write_text(
        "- text: what are the steps in social mobilization\n  expect: steps\n  lang: en\n"
        "  kind: short\n"
        "- text: strategies to win at chess\n  expect: out_of_scope\n  lang: en\n",
        encoding="utf-8",
    )
    rasa.answers["what are the steps in social mobilization"] = [("faq_steps", 0.93)]
    rasa.answers["strategies to win at chess"] = [("faq_strategies", 0.97)]
    for name, value in (env | {"RASA_URL": rasa.url}).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["nlu", "eval", "--set", str(chosen)])
    assert result.exit_code == 0, result.output
    assert "mine.yml:" in result.output
    assert "| all | 2 | 100.0% | 1/1 (100%) | 0 (0.0%) | 0 / 0 of 1 |" in result.output
    assert "| kind:short | 1 | 100.0% |" in result.output
    rasa.status = 503  # the fallback alone never asks Rasa
    calls = len(rasa.calls)
    down = CliRunner().invoke(main, ["nlu", "eval", "--fallback", "--set", str(chosen)])
    assert down.exit_code == 0, down.output
    assert "Rasa down" in down.output and len(rasa.calls) == calls
    assert "| all | 2 | 100.0% | 1/1 (100%) | 0 (0.0%) |" in down.output
