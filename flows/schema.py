"""Flow definitions (surveys and the feedback flow) loaded from YAML and checked.

A definition is data: `data/surveys/*.yml` and `data/flows/feedback.yml`. Loading checks the
whole schema; any mistake stops start-up with the file, the line and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.content import DATA_DIR, ContentError
from bot.core.messages import Language
from bot.core.text import normalize
from flows.located import LocatedDict, LocatedList, load_located

QUESTION_TYPES = ("single", "multi", "yesno", "number", "text")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
OPERATORS = ("is", "not", "in", "includes", "at_least", "at_most", "answered")
Answer = str | int | list[str] | None


@dataclass(frozen=True)
class Option:
    """One numbered choice of a single or multiple choice question."""

    value: str
    label: Mapping[Language, str]
    # Folded words that also pick this option: labels in both languages plus aliases.
    words: frozenset[str]


@dataclass(frozen=True)
class Condition:
    """Ask a question only when an earlier answer fits: `when: {question: q, is: yes}`."""

    question: str
    operator: str
    value: Any

    def holds(self, answers: Mapping[str, Answer]) -> bool:
        """Whether the condition is true for the answers so far (unanswered → false)."""
        answer = answers.get(self.question)
        if self.operator == "answered":
            return (answer is not None) == bool(self.value)
        if answer is None:
            return False
        if self.operator == "is":
            return bool(answer == self.value)
        if self.operator == "not":
            return bool(answer != self.value)
        if self.operator == "in":
            return answer in self.value
        if self.operator == "includes":
            return isinstance(answer, list) and self.value in answer
        if self.operator == "at_least":
            return isinstance(answer, int) and answer >= self.value
        if self.operator == "at_most":
            return isinstance(answer, int) and answer <= self.value
        raise AssertionError(self.operator)


@dataclass(frozen=True)
class Question:
    """One question of a flow."""

    id: str
    type: str
    text: Mapping[Language, str]
    options: tuple[Option, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_choices: int | None = None
    max_length: int = 500
    optional: bool = False
    max_reasks: int = 2
    invalid: Mapping[Language, str] | None = None
    when: Condition | None = None


@dataclass(frozen=True)
class Flow:
    """A survey or the feedback flow: questions asked in order, with skip logic."""

    key: str
    kind: str  # "survey" or "feedback"
    version: str
    title: Mapping[Language, str]
    intro: Mapping[Language, str] | None
    end: Mapping[Language, str]
    questions: tuple[Question, ...]
    digest: str
    default: bool = False
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def question(self, question_id: str) -> Question:
        """The question with this id (KeyError when the flow has none)."""
        for question in self.questions:
            if question.id == question_id:
                return question
        raise KeyError(question_id)

    def with_version(self, version: str) -> Flow:
        """This definition under another version label (see flows.registry)."""
        return Flow(
            self.key,
            self.kind,
            version,
            self.title,
            self.intro,
            self.end,
            self.questions,
            self.digest,
            self.default,
            self.source,
        )


class _Checker:
    """Reads one definition file, raising ContentError with the file and line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, line: int, what: str) -> ContentError:
        return ContentError(f"{self.path}:{line}: {what}")

    def mapping(self, raw: Any, line: int, what: str) -> LocatedDict:
        if not isinstance(raw, LocatedDict):
            raise self.fail(getattr(raw, "line", line), f"{what}: expected a mapping")
        return raw

    def only(self, raw: LocatedDict, allowed: Sequence[str], what: str) -> None:
        for key in raw:
            if key not in allowed:
                raise self.fail(
                    raw.line_of(key),
                    f"{what}: unknown field {key!r} (allowed: {', '.join(allowed)})",
                )

    def text(self, raw: LocatedDict, key: str, what: str) -> dict[Language, str]:
        return self.texts(raw.get(key), raw.line_of(key), f"{what}.{key}")

    def texts(self, value: Any, line: int, what: str) -> dict[Language, str]:
        if not isinstance(value, dict):
            raise self.fail(line, f"{what}: expected en: and ne: texts")
        texts: dict[Language, str] = {}
        for language in Language:
            text = value.get(language.value)
            if isinstance(text, int) and not isinstance(text, bool):
                text = str(text)
            if not isinstance(text, str) or not text.strip():
                raise self.fail(line, f"{what}: missing the {language.value!r} text")
            texts[language] = " ".join(text.split())
        return texts

    def integer(self, raw: LocatedDict, key: str, what: str, default: int | None) -> int | None:
        value = raw.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(raw.line_of(key), f"{what}.{key}: expected a whole number")
        return value

    def key(self, raw: LocatedDict, key: str, what: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not KEY_PATTERN.match(value):
            raise self.fail(
                raw.line_of(key),
                f"{what}.{key}: expected a lower-case key like 'main_issue', got {value!r}",
            )
        return value


def _answer_value(value: Any) -> Any:
    """YAML reads yes/no as booleans; conditions compare with the yes/no answer strings."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return value


def _option(check: _Checker, raw: Any, line: int, where: str) -> Option:
    item = check.mapping(raw, line, where)
    check.only(item, ("value", "label", "en", "ne", "aliases"), where)
    value = check.key(item, "value", where)
    if "label" in item:
        label = check.text(item, "label", where)
    else:  # the short form: `en:` and `ne:` directly on the option
        label = check.texts({"en": item.get("en"), "ne": item.get("ne")}, item.line, where)
    aliases = item.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str | int) for a in aliases):
        raise check.fail(item.line_of("aliases"), f"{where}.aliases: expected a list of words")
    words = {normalize(text) for text in label.values()}
    words |= {normalize(str(alias)) for alias in aliases}
    words |= {normalize(value.replace("_", " "))}
    return Option(value, label, frozenset(w for w in words if w))


def _condition(
    check: _Checker, raw: Any, where: str, line: int, earlier: Mapping[str, Question]
) -> Condition:
    item = check.mapping(raw, line, f"{where}.when")
    check.only(item, ("question", *OPERATORS), f"{where}.when")
    target = str(item.get("question"))
    if target not in earlier:
        raise check.fail(
            item.line_of("question"),
            f"{where}.when.question: {target!r} is not an earlier question of this flow",
        )
    operators = [op for op in OPERATORS if op in item]
    if len(operators) != 1:
        raise check.fail(item.line, f"{where}.when: give exactly one of {', '.join(OPERATORS)}")
    operator = operators[0]
    value = _answer_value(item[operator])
    asked = earlier[target]
    known = {o.value for o in asked.options} | ({"yes", "no"} if asked.type == "yesno" else set())
    choice = asked.type in ("single", "multi", "yesno")
    if operator in ("is", "not", "includes") and choice and value not in known:
        raise check.fail(
            item.line_of(operator),
            f"{where}.when.{operator}: {value!r} is not an answer of {target!r} "
            f"(one of: {', '.join(sorted(known))})",
        )
    if operator == "in":
        if not isinstance(value, list):
            raise check.fail(item.line_of(operator), f"{where}.when.in: expected a list")
        value = frozenset(_answer_value(v) for v in value)
        unknown = value - known if known else set()
        if unknown:
            raise check.fail(
                item.line_of(operator), f"{where}.when.in: unknown answers {sorted(unknown)}"
            )
    if operator == "includes" and asked.type != "multi":
        raise check.fail(item.line_of(operator), f"{where}.when.includes: needs a multi question")
    if operator in ("at_least", "at_most") and (
        asked.type != "number" or isinstance(value, bool) or not isinstance(value, int)
    ):
        raise check.fail(
            item.line_of(operator), f"{where}.when.{operator}: needs a number question and a number"
        )
    return Condition(str(target), operator, value)


QUESTION_FIELDS = (
    "id",
    "type",
    "text",
    "options",
    "min",
    "max",
    "max_choices",
    "max_length",
    "optional",
    "max_reasks",
    "invalid",
    "when",
)


def _question(
    check: _Checker, raw: Any, line: int, index: int, earlier: Mapping[str, Question]
) -> Question:
    where = f"questions[{index}]"
    item = check.mapping(raw, line, where)
    check.only(item, QUESTION_FIELDS, where)
    question_id = check.key(item, "id", where)
    where = f"question {question_id!r}"
    if question_id in earlier:
        raise check.fail(item.line_of("id"), f"{where}: the id is used twice")
    kind = item.get("type")
    if kind not in QUESTION_TYPES:
        raise check.fail(
            item.line_of("type"),
            f"{where}.type: expected one of {', '.join(QUESTION_TYPES)}, got {kind!r}",
        )
    options: tuple[Option, ...] = ()
    if kind in ("single", "multi"):
        raw_options = item.get("options")
        if not isinstance(raw_options, LocatedList) or len(raw_options) < 2:
            raise check.fail(item.line_of("options"), f"{where}.options: at least two options")
        if len(raw_options) > 20:
            raise check.fail(item.line_of("options"), f"{where}.options: at most 20 options")
        options = tuple(
            _option(check, option, raw_options.item_lines[n], f"{where}.options[{n + 1}]")
            for n, option in enumerate(raw_options)
        )
        seen: dict[str, str] = {}
        for option in options:
            if option.value in {o.value for o in options if o is not option}:
                raise check.fail(raw_options.line, f"{where}: option {option.value!r} twice")
            for word in option.words:
                if word in seen and seen[word] != option.value:
                    raise check.fail(
                        raw_options.line,
                        f"{where}: the word {word!r} names both {seen[word]!r} and "
                        f"{option.value!r}",
                    )
                seen[word] = option.value
    elif "options" in item:
        raise check.fail(item.line_of("options"), f"{where}.options: only for single/multi")
    minimum = check.integer(item, "min", where, None)
    maximum = check.integer(item, "max", where, None)
    if kind == "number":
        if minimum is None or maximum is None or minimum > maximum:
            raise check.fail(item.line, f"{where}: a number question needs min <= max")
    elif minimum is not None or maximum is not None:
        raise check.fail(
            item.line_of("min" if "min" in item else "max"), f"{where}: min/max only for number"
        )
    max_choices = check.integer(item, "max_choices", where, None)
    if max_choices is not None and (kind != "multi" or not 1 <= max_choices <= len(options)):
        raise check.fail(
            item.line_of("max_choices"),
            f"{where}.max_choices: only for multi, between 1 and the number of options",
        )
    max_reasks = check.integer(item, "max_reasks", where, 2)
    assert max_reasks is not None
    if not 0 <= max_reasks <= 5:
        raise check.fail(item.line_of("max_reasks"), f"{where}.max_reasks: between 0 and 5")
    max_length = check.integer(item, "max_length", where, 500)
    assert max_length is not None
    if not 1 <= max_length <= 1600:
        raise check.fail(item.line_of("max_length"), f"{where}.max_length: between 1 and 1600")
    optional = item.get("optional", False)
    if not isinstance(optional, bool):
        raise check.fail(item.line_of("optional"), f"{where}.optional: expected true or false")
    when = None
    if "when" in item:
        when = _condition(check, item["when"], where, item.line_of("when"), earlier)
    return Question(
        id=question_id,
        type=str(kind),
        text=check.text(item, "text", where),
        options=options,
        minimum=minimum,
        maximum=maximum,
        max_choices=max_choices,
        max_length=max_length,
        optional=optional,
        max_reasks=max_reasks,
        invalid=check.text(item, "invalid", where) if "invalid" in item else None,
        when=when,
    )


FLOW_FIELDS = ("key", "kind", "version", "default", "title", "intro", "end", "questions")


def _plain(value: Any) -> Any:
    """Drops the line bookkeeping: what the digest and the database see."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_flow(raw: Any, path: Path) -> Flow:
    """Checks one parsed definition; errors name `path` and the line."""
    check = _Checker(path)
    top = check.mapping(raw, 1, "the file")
    check.only(top, FLOW_FIELDS, "the file")
    key = check.key(top, "key", "the file")
    kind = top.get("kind", "survey")
    if kind not in ("survey", "feedback"):
        raise check.fail(top.line_of("kind"), f"kind: expected survey or feedback, got {kind!r}")
    version = top.get("version")
    if isinstance(version, bool) or not isinstance(version, int | str) or not str(version).strip():
        raise check.fail(top.line_of("version"), "version: expected a number like 1")
    default = top.get("default", False)
    if not isinstance(default, bool):
        raise check.fail(top.line_of("default"), "default: expected true or false")
    raw_questions = top.get("questions")
    if not isinstance(raw_questions, LocatedList) or not raw_questions:
        raise check.fail(top.line_of("questions"), "questions: expected a list of questions")
    questions: dict[str, Question] = {}
    for index, item in enumerate(raw_questions):
        question = _question(check, item, raw_questions.item_lines[index], index + 1, questions)
        questions[question.id] = question
    if all(q.when is not None for q in questions.values()):
        raise check.fail(raw_questions.line, "questions: the first question cannot be conditional")
    source = _plain(top)
    digest = hashlib.sha256(
        json.dumps(source, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    return Flow(
        key=key,
        kind=str(kind),
        version=str(version).strip(),
        title=check.text(top, "title", "the file"),
        intro=check.text(top, "intro", "the file") if "intro" in top else None,
        end=check.text(top, "end", "the file"),
        questions=tuple(questions.values()),
        digest=digest,
        default=default,
        source=source,
    )


def load_flow(path: Path) -> Flow:
    """Loads and checks one definition file."""
    return parse_flow(load_located(path), path)


@dataclass(frozen=True)
class FlowFiles:
    """Every shipped definition: the surveys and the feedback flow."""

    surveys: Mapping[str, Flow]
    feedback: Flow | None

    @property
    def default_survey(self) -> Flow | None:
        """The survey SURVEY starts: the one marked `default: true`, or the only one."""
        marked = [s for s in self.surveys.values() if s.default]
        if marked:
            return marked[0]
        if len(self.surveys) == 1:
            return next(iter(self.surveys.values()))
        return None

    @classmethod
    def load(cls, data_dir: Path = DATA_DIR) -> FlowFiles:
        """Loads `data/surveys/*.yml` and `data/flows/feedback.yml`, checking each."""
        surveys: dict[str, Flow] = {}
        for path in sorted((data_dir / "surveys").glob("*.yml")):
            flow = load_flow(path)
            if flow.kind != "survey":
                raise ContentError(f"{path}:1: kind: files under surveys/ must be surveys")
            if flow.key in surveys:
                raise ContentError(f"{path}:1: key: {flow.key!r} is already used by another survey")
            surveys[flow.key] = flow
        defaults = [s.key for s in surveys.values() if s.default]
        if len(defaults) > 1:
            raise ContentError(
                f"{data_dir / 'surveys'}: only one survey may be default: {defaults}"
            )
        feedback_path = data_dir / "flows" / "feedback.yml"
        feedback = load_flow(feedback_path) if feedback_path.exists() else None
        if feedback is not None:
            if feedback.kind != "feedback":
                raise ContentError(f"{feedback_path}:1: kind: expected feedback")
            missing = {"category", "message"} - {q.id for q in feedback.questions}
            if missing:
                raise ContentError(
                    f"{feedback_path}:1: questions: the feedback flow needs {sorted(missing)}"
                )
        return cls(surveys, feedback)
