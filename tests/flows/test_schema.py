"""Definitions are validated at load: shipped ones load, bad ones name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.content import ContentError
from flows.schema import FlowFiles
from tests.support.flows import flow_from, shipped

GOOD = """\
    key: water
    version: 1
    title: {en: Water, ne: पानी}
    end: {en: Thanks, ne: धन्यवाद}
    questions:
      - id: source
        type: single
        text: {en: "Where from?", ne: "कहाँबाट?"}
        options:
          - {value: tap, en: Tap, ne: धारा}
          - {value: well, en: Well, ne: इनार}
      - id: depth
        type: number
        min: 1
        max: 200
        when: {question: source, is: well}
        text: {en: "How deep?", ne: "कति गहिरो?"}
"""


def test_every_shipped_flow_loads_with_a_default_survey_and_feedback() -> None:
    files = FlowFiles.load()
    assert files.default_survey is not None
    assert files.feedback is not None
    for flow in [*files.surveys.values(), files.feedback]:
        assert flow.questions, flow.key


def test_the_assessment_survey_covers_step_one_with_skip_logic_twice() -> None:
    survey = shipped().surveys["community_assessment"]
    assert 6 <= len(survey.questions) <= 10
    assert sum(q.when is not None for q in survey.questions) >= 2
    kinds = {q.type for q in survey.questions}
    assert kinds == {"single", "multi", "yesno", "number", "text"}
    ids = {q.id for q in survey.questions}
    assert {"main_issue", "priorities", "resources", "willing", "channel", "best_time"} <= ids


def test_a_good_file_loads(tmp_path: Path) -> None:
    flow = flow_from(tmp_path, GOOD)
    assert [q.id for q in flow.questions] == ["source", "depth"]
    assert flow.question("depth").when is not None
    assert len(flow.digest) == 64


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("type: number", "type: numbr"), 13, "type: expected one of"),
        (("question: source, is: well", "question: sauce, is: well"), 16, "not an earlier"),
        (("question: source, is: well", "question: source, is: river"), 16, "'river' is not"),
        (("min: 1\n", "min: 500\n"), 12, "min <= max"),
        ((" ne: धन्यवाद}", " nee: धन्यवाद}"), 4, "missing the 'ne' text"),
        (
            ("{value: well, en: Well, ne: इनार}", "{value: Well!, en: Well}"),
            11,
            "expected a lower-case key",
        ),
        (("    type: single", "    type: single\n    colour: red"), 8, "unknown field 'colour'"),
        (("- id: depth", "- id: source"), 12, "used twice"),
        (("version: 1", "version: [1"), 3, ""),
    ],
)
def test_a_bad_file_names_the_file_the_line_and_the_problem(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    import textwrap

    text = textwrap.dedent(GOOD)
    old, new = change
    assert old in text, old
    broken = text.replace(old, new)
    with pytest.raises(ContentError) as raised:
        flow_from(tmp_path, broken)
    error = str(raised.value)
    assert error.startswith(f"{tmp_path / 'survey.yml'}:"), error
    assert message in error
    reported = int(error.split(":")[1])
    assert abs(reported - line) <= 1, error


def test_a_bad_survey_file_stops_loading_everything(tmp_path: Path) -> None:
    (tmp_path / "surveys").mkdir()
    (tmp_path / "surveys" / "bad.yml").write_text("key: bad\nquestions: []\n", encoding="utf-8")
    with pytest.raises(ContentError, match=r"bad\.yml:\d+: "):
        FlowFiles.load(tmp_path)
