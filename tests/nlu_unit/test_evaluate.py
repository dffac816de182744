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
from nlu.evaluate import EVAL_SET, cv_summary, evaluate, load_eval_set, main, report


def model(table: dict[str, tuple[str, float]]):  # type: ignore[no-untyped-def]
    def understand(text: str) -> Understanding:
        intent, confidence = table[text]
        return Understanding(intent, confidence, (Candidate(intent, confidence),))

    return understand


def test_scores_accuracy_refusals_and_wrong_answers() -> None:
    items = [
        {"text": "a", "expect": "steps", "lang": "en"},  # right answer
        {"text": "b", "expect": "steps", "lang": "en"},  # confident wrong topic
        {"text": "c", "expect": "out_of_scope", "lang": "ne"},  # refused
        {"text": "d", "expect": "out_of_scope", "lang": "ne"},  # answered: wrong
        {"text": "e", "expect": "greet", "lang": "romanized"},  # intent recognised
    ]
    understand = model({
        "a": ("faq_steps", 0.9), "b": ("faq_meaning", 0.9), "c": ("out_of_scope", 0.9),
        "d": ("faq_steps", 0.95), "e": ("greet", 0.9),
    })  # fmt: skip
    tallies = evaluate(understand, {"steps", "meaning"}, items, NluPolicy())
    overall = tallies["all"]
    assert (overall.total, overall.correct, overall.wrong_answers) == (5, 3, 2)
    assert (overall.out_of_scope, overall.refused) == (2, 1)
    assert (tallies["en"].correct, tallies["ne"].refused) == (1, 1)
    assert "| all | 5 | 60.0% | 1/2 (50%) | 2 (40.0%) |" in report(tallies)


def test_shipped_eval_set_loads_and_bad_one_is_named(tmp_path: Path) -> None:
    assert len(load_eval_set()) >= 90
    bad = tmp_path / "eval.yml"
    bad.write_text("- text: hi\n  expect: greet\n  lang: fr\n", encoding="utf-8")
    with pytest.raises(ContentError, match="item 1"):
        load_eval_set(bad)


def test_eval_set_is_installed_with_the_package_and_is_not_training_data() -> None:
    """`bot nlu eval` works from an installed package (issue 14), on questions never trained."""
    package = Path(nlu.__file__).resolve().parent
    assert EVAL_SET.parent == package and EVAL_SET.is_file()
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["*"]
    assert any(fnmatch(EVAL_SET.name, pattern) for pattern in patterns)
    catalogue = Catalogue.load()
    groups = [t.examples for t in catalogue.topics.values()]
    groups += [i.examples for i in catalogue.intents.values()]
    trained = {
        text.casefold().strip() for group in groups for texts in group.values() for text in texts
    }
    overlap = [
        item["text"] for item in load_eval_set() if item["text"].casefold().strip() in trained
    ]
    assert overlap == []


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
