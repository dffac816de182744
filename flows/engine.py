"""The conversation engine: `step(flow, session, text) -> Step(session, messages)`.

Pure: it reads a definition and a session and returns the next session and what to say.
Saving sessions is the caller's business (the contact row, as JSON: bot/inbox.py); keywords such as
STOP, HELP and LANG are handled by the bot before a message reaches a flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.core.content import Texts
from bot.core.messages import Language
from flows.answers import Invalid, Vocabulary, is_word, parse_answer
from flows.schema import Answer, Flow, Question

ACTIVE = "active"
COMPLETED = "completed"
QUIT = "quit"
EXPIRED = "expired"
STOPPED = "stopped"  # the contact opted out mid-flow
ENDED = (COMPLETED, QUIT, EXPIRED, STOPPED)
DEFAULT_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Session:
    """One person's way through one flow. JSON-friendly through to_dict/from_dict."""

    id: str
    flow: str
    kind: str
    version: str
    question: str | None  # the question waiting for an answer; None once ended
    answers: Mapping[str, Answer]
    status: str
    started_at: datetime
    updated_at: datetime
    skipped: tuple[str, ...] = ()  # skipped, or given up after too many re-asks
    reasks: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)  # e.g. the feedback reference

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def expired(self, now: datetime, ttl: timedelta = DEFAULT_TTL) -> bool:
        """Whether the person has been silent for longer than `ttl`."""
        return self.active and now - self.updated_at > ttl

    def ended(self, status: str, now: datetime) -> Session:
        """This session closed with `status`; the answers given so far stay."""
        return replace(self, status=status, question=None, updated_at=now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow": self.flow,
            "kind": self.kind,
            "version": self.version,
            "question": self.question,
            "answers": dict(self.answers),
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "skipped": list(self.skipped),
            "reasks": self.reasks,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Session:
        return cls(
            id=str(raw["id"]),
            flow=str(raw["flow"]),
            kind=str(raw["kind"]),
            version=str(raw["version"]),
            question=raw.get("question"),
            answers=dict(raw.get("answers") or {}),
            status=str(raw["status"]),
            started_at=datetime.fromisoformat(raw["started_at"]),
            updated_at=datetime.fromisoformat(raw["updated_at"]),
            skipped=tuple(raw.get("skipped") or ()),
            reasks=int(raw.get("reasks") or 0),
            extra=dict(raw.get("extra") or {}),
        )


@dataclass(frozen=True)
class Kit:
    """What every flow shares: the answer vocabulary and the bot's texts for hints."""

    vocabulary: Vocabulary
    texts: Texts


@dataclass(frozen=True)
class Step:
    """The outcome of one step: the new session and the message bodies to send."""

    session: Session
    messages: list[str]
    # started, answered, skipped, reask, gave_up, cannot_skip, completed, quit
    event: str


def render_question(question: Question, language: Language, kit: Kit) -> str:
    """The question as one SMS: text, numbered options, and how to reply."""
    texts = kit.texts
    lines = [question.text[language]]
    lines += [f"{n}) {o.label[language]}" for n, o in enumerate(question.options, start=1)]
    if question.type == "number":
        hint = texts.get("survey_hint_number", language).format(
            minimum=question.minimum, maximum=question.maximum
        )
        lines.append(hint)
    elif question.type != "text":
        lines.append(texts.get(f"survey_hint_{question.type}", language))
    if question.optional:
        lines.append(texts.get("survey_hint_optional", language))
    return "\n".join(lines)


def _invalid_text(question: Question, invalid: Invalid, language: Language, kit: Kit) -> str:
    if question.invalid is not None:
        return question.invalid[language]
    key = f"survey_invalid_{invalid.reason}"
    if invalid.reason == "too_many" and question.type == "single":
        key = "survey_invalid_only_one"
    if key not in kit.texts.by_key:
        key = "survey_invalid_not_understood"
    return kit.texts.get(key, language).format(
        max_choices=question.max_choices, max_length=question.max_length
    )


def _next_question(flow: Flow, after: str | None, answers: Mapping[str, Answer]) -> Question | None:
    """The first question after `after` whose condition holds and that has no answer yet."""
    ids = [q.id for q in flow.questions]
    start = ids.index(after) + 1 if after is not None else 0
    for question in flow.questions[start:]:
        if question.id in answers:  # given up front ("FEEDBACK the tap is broken")
            continue
        if question.when is None or question.when.holds(answers):
            return question
    return None


def _end_text(flow: Flow, session: Session, language: Language) -> str:
    text = flow.end[language]
    for name, value in session.extra.items():
        text = text.replace("{" + name + "}", value)
    return text


def _advance(
    flow: Flow, session: Session, prefix: list[str], now: datetime, language: Language, kit: Kit
) -> tuple[Session, list[str], bool]:
    question = _next_question(flow, session.question, session.answers)
    if question is None:
        done = replace(session, status=COMPLETED, question=None, reasks=0, updated_at=now)
        return done, ["\n".join([*prefix, _end_text(flow, done, language)])], True
    moved = replace(session, question=question.id, reasks=0, updated_at=now)
    return moved, ["\n".join([*prefix, render_question(question, language, kit)])], False


def start(
    flow: Flow,
    session_id: str,
    *,
    now: datetime,
    language: Language,
    kit: Kit,
    answers: Mapping[str, Answer] | None = None,
    extra: Mapping[str, str] | None = None,
) -> Step:
    """Begins `flow`: the intro (if any) and the first question, as one message.

    `answers` are given up front (skipped when their questions come up); `extra` fills
    placeholders such as `{reference}` in the end message.
    """
    session = Session(
        id=session_id,
        flow=flow.key,
        kind=flow.kind,
        version=flow.version,
        question=None,
        answers=dict(answers or {}),
        status=ACTIVE,
        started_at=now,
        updated_at=now,
        extra=dict(extra or {}),
    )
    prefix = [flow.intro[language]] if flow.intro is not None else []
    session, messages, done = _advance(flow, session, prefix, now, language, kit)
    return Step(session, messages, "completed" if done else "started")


def current_question(flow: Flow, session: Session) -> Question | None:
    """The question the session waits on, if it is active and the question exists."""
    if not session.active or session.question is None:
        return None
    try:
        return flow.question(session.question)
    except KeyError:
        return None


def step(
    flow: Flow, session: Session, text: str, *, now: datetime, language: Language, kit: Kit
) -> Step:
    """Applies one message to an active session.

    Args:
        flow: the definition the session runs (its own version).
        session: an active session of `flow`.
        text: what the person sent.
        now: the current time (UTC).
        language: the language to answer in.
        kit: the shared vocabulary and texts.

    Returns:
        The next session and the messages to send. Never raises for any text.
    """
    question = current_question(flow, session)
    if question is None:
        ended = session.ended(QUIT, now)
        return Step(ended, [kit.texts.get(f"{flow.kind}_quit", language)], "quit")
    if is_word(text, kit.vocabulary.quit):
        ended = session.ended(QUIT, now)
        return Step(ended, [kit.texts.get(f"{flow.kind}_quit", language)], "quit")
    if is_word(text, kit.vocabulary.skip):
        if not question.optional:
            again = "\n".join(
                [
                    kit.texts.get("survey_cannot_skip", language),
                    render_question(question, language, kit),
                ]
            )
            return Step(replace(session, updated_at=now), [again], "cannot_skip")
        skipped = replace(session, skipped=(*session.skipped, question.id))
        moved, messages, done = _advance(flow, skipped, [], now, language, kit)
        return Step(moved, messages, "completed" if done else "skipped")
    parsed = parse_answer(text, question, kit.vocabulary)
    if isinstance(parsed, Invalid):
        if session.reasks >= question.max_reasks:
            gave_up = replace(session, skipped=(*session.skipped, question.id))
            prefix = [kit.texts.get("survey_gave_up", language)]
            moved, messages, done = _advance(flow, gave_up, prefix, now, language, kit)
            return Step(moved, messages, "completed" if done else "gave_up")
        again = "\n".join(
            [
                _invalid_text(question, parsed, language, kit),
                render_question(question, language, kit),
            ]
        )
        return Step(replace(session, reasks=session.reasks + 1, updated_at=now), [again], "reask")
    answered = replace(session, answers={**session.answers, question.id: parsed})
    moved, messages, done = _advance(flow, answered, [], now, language, kit)
    return Step(moved, messages, "completed" if done else "answered")
