"""Surveys and feedback inside the bot: starting, continuing, expiring and ending sessions.

The flow engine (flows/) is pure and knows nothing of contacts; this module turns its steps
into turns: outbound messages, the contact's new state, the response to store, feedback.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.core.messages import (
    ContactState,
    FeedbackRecord,
    FlowProgress,
    Language,
    Outbound,
    Turn,
)
from flows.answers import Invalid, is_word, parse_answer
from flows.engine import (
    COMPLETED,
    DEFAULT_TTL,
    EXPIRED,
    Kit,
    Session,
    Step,
    current_question,
    render_question,
    start,
    step,
)
from flows.registry import FlowBook
from flows.schema import Flow

# Feedback references are read over the phone: no 0/O or 1/I.
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_reference() -> str:
    """A short feedback reference like `FB-7KQ2XM`."""
    return "FB-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def new_session_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Conversations:
    """Runs flows for the bot. `say` renders one of the bot's own texts as an Outbound."""

    book: FlowBook
    kit: Kit
    ttl: timedelta = DEFAULT_TTL
    session_id: Callable[[], str] = new_session_id
    reference: Callable[[], str] = new_reference

    def active(self, contact: ContactState) -> Session | None:
        """The contact's session, if one is under way."""
        if not contact.session:
            return None
        session = Session.from_dict(contact.session)
        return session if session.active else None

    def flow_of(self, session: Session) -> Flow | None:
        return self.book.get(session.flow, session.version)

    def reask(self, session: Session, language: Language) -> str | None:
        """The current question again, introduced as a reminder, or None."""
        flow = self.flow_of(session)
        question = current_question(flow, session) if flow else None
        if question is None:
            return None
        reminder = self.kit.texts.get("flow_in_progress", language)
        return f"{reminder}\n{render_question(question, language, self.kit)}"

    def is_answer(self, session: Session, text: str) -> bool:
        """Whether `text` reads as an answer to the session's current question."""
        flow = self.flow_of(session)
        question = current_question(flow, session) if flow else None
        if question is None:
            return False
        return not isinstance(parse_answer(text, question, self.kit.vocabulary), Invalid)

    def is_control(self, text: str) -> bool:
        """SKIP or QUIT: words the flow itself handles."""
        vocabulary = self.kit.vocabulary
        return is_word(text, vocabulary.skip) or is_word(text, vocabulary.quit)

    # -- turning engine steps into turns ---------------------------------------------------

    def _turn(
        self,
        contact: ContactState,
        flow: Flow,
        result: Step,
        language: Language,
        extra: list[Outbound] | None = None,
    ) -> Turn:
        session = result.session
        done = contact.done
        if session.status == COMPLETED and flow.kind == "survey":
            done = (*done, f"{flow.key}@{flow.version}")
        updated = replace(contact, session=session.to_dict() if session.active else None, done=done)
        outbounds = list(extra or [])
        outbounds += [
            Outbound(
                channel=contact.channel,
                to=contact.phone,
                body=body,
                language=language,
                kind=f"{flow.kind}_{result.event}",
            )
            for body in result.messages
        ]
        feedback = None
        if flow.kind == "feedback" and session.status == COMPLETED:
            feedback = FeedbackRecord(
                reference=session.extra.get("reference", ""),
                category=str(session.answers.get("category") or "other"),
                body=str(session.answers.get("message") or ""),
                location=_text_or_none(session.answers.get("location")),
                language=language,
                channel=contact.channel,
                session_id=session.id,
            )
        return Turn(
            outbounds,
            updated,
            intent=flow.kind,
            progress=(FlowProgress(session.to_dict(), language, contact.channel),),
            feedback=feedback,
        )

    def begin(
        self,
        contact: ContactState,
        flow: Flow,
        language: Language,
        now: datetime,
        message: str | None = None,
    ) -> Turn | None:
        """Starts `flow` for the contact, or None when they already completed this survey."""
        if flow.kind == "survey" and f"{flow.key}@{flow.version}" in contact.done:
            return None
        answers = {}
        extra = {}
        if flow.kind == "feedback":
            extra["reference"] = self.reference()
            if message and message.strip():
                answers["message"] = " ".join(message.split())[:1600]
        result = start(
            flow,
            self.session_id(),
            now=now,
            language=language,
            kit=self.kit,
            answers=answers,
            extra=extra,
        )
        return self._turn(contact, flow, result, language)

    def advance(
        self, contact: ContactState, session: Session, text: str, language: Language, now: datetime
    ) -> Turn | None:
        """Applies a message to the session; None when its definition is gone."""
        flow = self.flow_of(session)
        if flow is None or current_question(flow, session) is None:
            return None
        result = step(flow, session, text, now=now, language=language, kit=self.kit)
        return self._turn(contact, flow, result, language)

    def end(self, contact: ContactState, session: Session, status: str, now: datetime) -> Turn:
        """Closes the session (expired, stopped…) without a message; answers are kept."""
        ended = session.ended(status, now)
        language = contact.language or Language.EN
        return Turn(
            [],
            replace(contact, session=None),
            progress=(FlowProgress(ended.to_dict(), language, contact.channel),),
        )

    def expire(self, contact: ContactState, session: Session, now: datetime) -> Turn:
        return self.end(contact, session, EXPIRED, now)

    def question_type(self, session: Session) -> str | None:
        """The type of the current question ("text", "single"…), for the FAQ check."""
        flow = self.flow_of(session)
        question = current_question(flow, session) if flow else None
        return question.type if question else None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
