"""The FAQ catalogue loader and the Rasa training-data builder, on small files of our own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.core.content import ContentError
from nlu.catalogue import Catalogue
from nlu.training import rasa_nlu_yaml


def topic(key: str, en: list[str]) -> dict[str, object]:
    return {
        "key": key,
        "question": {"en": f"What about {key}?", "ne": "के हो?"},
        "answer": {"en": f"About {key}.", "ne": "यसबारे।"},
        "examples": {"en": en, "ne": [f"{key} के हो"], "romanized": [f"{key} k ho"]},
    }


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_builds_rasa_training_data(tmp_path: Path) -> None:
    write(
        tmp_path / "faq" / "steps.yml",
        topic("steps", ["steps of mobilization", "what are the steps"]),
    )
    write(
        tmp_path / "intents" / "greet.yml",
        {"intent": "greet", "examples": {"en": ["hi"], "ne": ["नमस्ते"], "romanized": ["namaste"]}},
    )
    catalogue = Catalogue.load(tmp_path)
    document = yaml.safe_load(rasa_nlu_yaml(catalogue))
    assert document["version"] == "3.1"
    by_intent = {block["intent"]: block["examples"] for block in document["nlu"]}
    assert set(by_intent) == {"faq_steps", "greet"}
    # Written as the client sends text at parse time (issue 13): "k" is "ke".
    assert "- steps ke ho\n" in by_intent["faq_steps"]
    assert "- steps k ho\n" not in by_intent["faq_steps"]
    assert "- नमस्ते\n" in by_intent["greet"]


def test_training_data_folds_spelling_variants_and_drops_their_collisions(tmp_path: Path) -> None:
    write(tmp_path / "faq" / "steps.yml", topic("steps", ["parichalan ko charan k xa"]))
    write(
        tmp_path / "intents" / "greet.yml",
        {"intent": "greet", "examples": {"en": ["hi"], "ne": ["परीचालन"],
                                         "romanized": ["parichalan ko charan ke chha"]}},
    )  # fmt: skip
    by_intent = {
        block["intent"]: block["examples"]
        for block in yaml.safe_load(rasa_nlu_yaml(Catalogue.load(tmp_path)))["nlu"]
    }
    assert "- परिचालन\n" in by_intent["greet"]  # the long vowel folded
    # The two spellings are one example now; the intent that had it first keeps it.
    assert "parichalan ko charan ke chha" in by_intent["faq_steps"]
    assert "charan" not in by_intent["greet"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("steps.yml", topic("other", ["x"]), "must match the file name"),
        ("steps.yml", {**topic("steps", ["x"]), "answer": {"en": "only English"}}, "'ne'"),
        ("steps.yml", {**topic("steps", ["x"]), "colour": "red"}, "unknown fields"),
        ("Bad Key.yml", topic("Bad Key", ["x"]), "lower_case"),
    ],
)
def test_bad_files_name_the_file_and_problem(
    tmp_path: Path, name: str, data: object, message: str
) -> None:
    path = tmp_path / "faq" / name
    write(path, data)
    with pytest.raises(ContentError, match=message) as error:
        Catalogue.load(tmp_path)
    assert str(path) in str(error.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "faq" / "steps.yml"
    path.parent.mkdir(parents=True)
    path.write_text("key: steps\nquestion: [unclosed\n", encoding="utf-8")
    with pytest.raises(ContentError, match=r"steps\.yml:\d+"):
        Catalogue.load(tmp_path)


def test_one_example_under_two_intents_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "faq" / "steps.yml", topic("steps", ["what is it"]))
    write(tmp_path / "faq" / "meaning.yml", topic("meaning", ["What is it"]))
    with pytest.raises(ContentError, match="both"):
        Catalogue.load(tmp_path)


def test_conversational_intents_may_not_start_with_faq(tmp_path: Path) -> None:
    write(
        tmp_path / "intents" / "faqish.yml",
        {"intent": "faqish", "examples": {"en": ["a"], "ne": ["b"], "romanized": ["c"]}},
    )
    with pytest.raises(ContentError, match="faq"):
        Catalogue.load(tmp_path)


def test_faq_report_shows_segments(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    data = topic("steps", ["steps?"])
    data["answer"] = {"en": "a" * 200, "ne": "न" * 80}
    write(tmp_path / "faq" / "steps.yml", data)
    result = CliRunner().invoke(main, ["faq", "report", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()[1:]]
    assert ["steps", "answer", "en", "200", "GSM-7", "2"] in lines
    assert ["steps", "answer", "ne", "80", "UCS-2", "2"] in lines


def test_nlu_build_writes_training_data(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    write(tmp_path / "faq" / "steps.yml", topic("steps", ["steps?", "the steps"]))
    out = tmp_path / "build"
    result = CliRunner().invoke(main, ["nlu", "build", "--data", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 FAQ topics" in result.output and "4 examples" in result.output
    assert "faq_steps" in (out / "nlu.yml").read_text(encoding="utf-8")


def test_nlu_build_names_a_bad_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    write(tmp_path / "faq" / "steps.yml", {"key": "steps"})
    result = CliRunner().invoke(
        main, ["nlu", "build", "--data", str(tmp_path), "--out", str(tmp_path / "b")]
    )
    assert result.exit_code != 0
    assert "steps.yml" in result.output
