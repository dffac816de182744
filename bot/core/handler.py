"""The conversation core: `Bot.handle(inbound, contact) -> Turn`.

Keywords come first and override anything running; an opted-out contact hears nothing
until they opt in again. Everything else is answered from content in the contact's language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from bot.core.content import Content
from bot.core.conversations import Conversations
from bot.core.desk import BroadcastDesk, DeskReply
from bot.core.fallback import FaqMatcher
from bot.core.faq import FaqTopic, NluPolicy, decide
from bot.core.keywords import KeywordMatch, detect_language, match_keyword
from bot.core.messages import (
    ConsentChange,
    ContactState,
    FlowProgress,
    Inbound,
    Language,
    Outbound,
    Turn,
    Unanswered,
)
from bot.core.text import devanagari_share, normalize
from bot.core.understanding import NluUnavailable, Understand, Understanding
from flows.answers import yes_or_no
from flows.engine import QUIT, STOPPED, Session


def utcnow() -> datetime:
    return datetime.now(UTC)


def split_code(text: str) -> tuple[str, str]:
    """ "YES 4827" → ("yes", "4827"): the words and the digits of a reply (any script's digits).

    >>> split_code("Yes, 48 27")
    ('yes', '4827')
    >>> split_code("हो ४८२७")
    ('हो', '4827')
    """
    folded = normalize(text)
    digits = "".join(ch for ch in folded if ch.isascii() and ch.isdigit())
    words = " ".join("".join(" " if ch.isdigit() else ch for ch in folded).split())
    return words, digits


# Conversational intents answered with one text of data/messages.yml.
SIMPLE_REPLIES = {"greet": "greet", "goodbye": "goodbye", "thanks": "thanks", "help": "help_menu"}


# The share of Devanagari letters that makes a message Nepali.
DEVANAGARI = 0.3
# In a free-text survey answer, a FAQ question interrupts only when the model is this sure.
STRICT_INTERRUPT = 0.8


class Bot:
    """Decides what to answer. Pure apart from the content it was given and the clock."""

    def __init__(
        self,
        content: Content,
        faq: Mapping[str, FaqTopic] | None = None,
        understand: Understand | None = None,
        policy: NluPolicy | None = None,
        flows: Conversations | None = None,
        clock: Callable[[], datetime] = utcnow,
        desk: BroadcastDesk | None = None,
    ) -> None:
        self.content = content
        self.faq = dict(faq or {})
        self.understand = understand
        self.policy = policy or NluPolicy()
        self.flows = flows
        self.clock = clock
        self.desk = desk

    @cached_property
    def fallback(self) -> FaqMatcher:
        """The keyword matcher that answers clear FAQ questions while the NLU is down."""
        return FaqMatcher(self.faq.values())

    def reply_language(
        self, inbound: Inbound, contact: ContactState, in_flow: bool = False
    ) -> Language:
        """The contact's saved preference, else the language of the message, else the language
        of our last reply, else English. In a survey the last reply's language wins over the
        message's: "2" or "WhatsApp" does not switch a Nepali survey to English."""
        if contact.language is not None:
            return contact.language
        if in_flow and contact.last_language is not None:
            if devanagari_share(inbound.body) >= DEVANAGARI:
                return Language.NE
            return contact.last_language
        return detect_language(inbound.body, self.content) or contact.last_language or Language.EN

    def _say(self, contact: ContactState, key: str, language: Language, **kw: object) -> Outbound:
        return self._send(contact, self.content.texts.get(key, language), language, key, **kw)

    def _send(
        self, contact: ContactState, body: str, language: Language, kind: str, **kw: object
    ) -> Outbound:
        return Outbound(
            channel=contact.channel,
            to=contact.phone,
            body=body,
            language=language,
            kind=kind,
            **kw,  # type: ignore[arg-type]
        )

    def handle(self, inbound: Inbound, contact: ContactState) -> Turn:
        """Handles one inbound message from `contact`.

        Args:
            inbound: the message as received.
            contact: the sender's state before this message.

        Returns:
            The messages to send, the contact's new state and any consent change.
        """
        now = inbound.received_at or self.clock()
        keyword = match_keyword(inbound.body, self.content.keywords)
        session = self.flows.active(contact) if self.flows else None
        in_flow = session is not None and keyword is None
        language = self.reply_language(inbound, contact, in_flow=in_flow)

        if contact.opted_out:
            if keyword is None or keyword.action != "opt_in":
                return Turn(contact=contact, intent="ignored_opted_out")
            updated = replace(contact, opted_out=False)
            return Turn(
                [self._say(updated, "opt_in_confirmation", language)],
                updated,
                ConsentChange(opted_out=False, reason="keyword"),
                intent="opt_in",
            )

        paused = contact.paused_until is not None and now < contact.paused_until
        if paused and (keyword is None or keyword.action not in ("opt_out", "opt_in")):
            # A coordinator or mobilizer is answering by hand; STOP and START still work.
            return Turn(contact=contact, intent="handoff")
        if self.flows is not None and session is not None and session.expired(now, self.flows.ttl):
            # Hours of silence: the session ends, its answers stay (marked incomplete).
            expired = self.flows.expire(contact, session, now)
            assert expired.contact is not None
            if keyword is None and self.flows.is_answer(session, inbound.body):
                note = self._say(expired.contact, "survey_expired", language)
                return replace(expired, outbounds=[note], intent="flow_expired")
            turn = self._handle(inbound, expired.contact, language, keyword, None, now)
            return replace(turn, progress=expired.progress + turn.progress)
        return self._handle(inbound, contact, language, keyword, session, now)

    def _handle(
        self,
        inbound: Inbound,
        contact: ContactState,
        language: Language,
        keyword: KeywordMatch | None,
        session: Session | None,
        now: datetime,
    ) -> Turn:
        action = keyword.action if keyword else None
        if action == "opt_out":
            return self._opt_out(contact, language, "keyword", session, now)
        if action in ("opt_in", "language", "help"):
            assert keyword is not None
            turn = self._keyword_reply(contact, keyword, language)
            if session is not None:  # the survey waits: remind them where they were
                turn = self._with_reask(turn, session)
            return turn
        if action == "broadcast":
            assert keyword is not None
            return self._desk(contact, inbound, keyword.rest, language)
        if session is not None:
            return self._in_flow(inbound, contact, language, action, session, now)
        if action == "survey":
            assert keyword is not None
            return self._start_survey(contact, keyword.rest, language, now)
        if action == "feedback":
            assert keyword is not None
            return self._start_feedback(contact, keyword.rest, language, now)

        pending = dict(contact.pending or {})
        settled = replace(contact, pending=None)  # any other message ends what was pending
        if action == "more":
            return self._more(settled, pending, language)
        if pending.get("broadcast") and self.desk is not None and self.flows is not None:
            words, code = split_code(inbound.body)
            answer = yes_or_no(words, self.flows.kit.vocabulary) if words else None
            if answer is not None:
                draft = int(pending["broadcast"])
                if answer == "no":
                    return self._desk_reply(settled, self.desk.drop(contact.phone, draft), language)
                attempt = int(pending.get("tries", 0)) + 1
                reply = self.desk.confirm(contact.phone, draft, code, attempt, inbound.channel)
                return self._desk_reply(settled, reply, language, tries=attempt)
        choices = pending.get("choices") or []
        picked = normalize(inbound.body)
        if choices and picked.isdigit() and 1 <= int(picked) <= len(choices):
            key = choices[int(picked) - 1]
            if key in self.faq:
                return self._answer(settled, key, language, confidence=None)

        if not inbound.body.strip() and inbound.media_urls:
            return Turn([self._say(settled, "media_only", language)], settled, intent="media_only")
        if self.understand is None or not inbound.body.strip():
            return Turn(
                [self._say(settled, "help_menu", language)], settled, intent="fallback_menu"
            )
        try:
            understanding = self.understand(inbound.body)
        except NluUnavailable:
            # Rasa is down: a clear FAQ question is still answered from the catalogue.
            key = self.fallback.answer(inbound.body) if self.faq else None
            if key is not None:
                return self._answer(settled, key, language, confidence=None)
            return Turn(
                [self._say(settled, "nlu_unavailable", language)],
                settled,
                intent="nlu_unavailable",
                unanswered=Unanswered("nlu_unavailable"),
            )
        return self._understood(settled, understanding, language, now, inbound.body)

    def _desk(self, contact: ContactState, inbound: Inbound, text: str, language: Language) -> Turn:
        settled = replace(contact, pending=None)
        if self.desk is None:
            return Turn([self._say(settled, "help_menu", language)], settled, intent="broadcast")
        reply = self.desk.request(
            contact.phone, text, language, inbound.provider_id, inbound.channel
        )
        return self._desk_reply(settled, reply, language)

    def _desk_reply(
        self, contact: ContactState, reply: DeskReply, language: Language, tries: int = 0
    ) -> Turn:
        body = self.content.texts.get(reply.key, language).format(**reply.values)
        updated = contact
        if reply.draft_id is not None:
            pending: dict[str, Any] = {"broadcast": reply.draft_id}
            if tries:
                pending["tries"] = tries
            updated = replace(contact, pending=pending)
        return Turn([self._send(updated, body, language, reply.key)], updated, intent="broadcast")

    def _keyword_reply(
        self, contact: ContactState, keyword: KeywordMatch, language: Language
    ) -> Turn:
        if keyword.action == "opt_in":
            return Turn(
                [self._say(contact, "already_subscribed", language)], contact, intent="opt_in"
            )
        if keyword.action == "language":
            current = contact.language or language
            chosen = keyword.argument or (Language.NE if current is Language.EN else Language.EN)
            updated = replace(contact, language=chosen)
            return Turn([self._say(updated, "language_set", chosen)], updated, intent="language")
        return Turn([self._say(contact, "help_menu", language)], contact, intent="help")

    def _opt_out(
        self,
        contact: ContactState,
        language: Language,
        reason: str,
        session: Session | None,
        now: datetime,
        confidence: float | None = None,
    ) -> Turn:
        progress: tuple[FlowProgress, ...] = ()
        if session is not None and self.flows is not None:  # the survey stops, answers stay
            progress = self.flows.end(contact, session, STOPPED, now).progress
        updated = replace(contact, opted_out=True, session=None, pending=None)
        confirmation = self._say(updated, "opt_out_confirmation", language, allow_opted_out=True)
        return Turn(
            [confirmation],
            updated,
            ConsentChange(True, reason),
            intent="opt_out",
            confidence=confidence,
            progress=progress,
        )

    def _more(self, contact: ContactState, pending: Mapping[str, Any], language: Language) -> Turn:
        topic = self.faq.get(str(pending.get("more")))
        if topic is None or topic.more is None:
            return Turn([self._say(contact, "no_more", language)], contact, intent="more")
        # MORE continues in the answer's language, whatever language "MORE" looks like.
        language = Language(pending.get("language", language.value))
        more = self._send(contact, topic.more[language], language, f"faq_{topic.key}_more")
        return Turn([more], contact, intent="more")

    # -- surveys and feedback ---------------------------------------------------------------

    def _with_reask(self, turn: Turn, session: Session) -> Turn:
        """`turn` followed by the session's current question, in the turn's language."""
        assert self.flows is not None and turn.contact is not None
        language = turn.outbounds[0].language if turn.outbounds else Language.EN
        reask = self.flows.reask(session, language)
        if reask is None:
            return turn
        extra = self._send(turn.contact, reask, language, "flow_reask")
        return replace(turn, outbounds=[*turn.outbounds, extra])

    def _in_flow(
        self,
        inbound: Inbound,
        contact: ContactState,
        language: Language,
        action: str | None,
        session: Session,
        now: datetime,
    ) -> Turn:
        assert self.flows is not None
        text = inbound.body
        if action in ("survey", "feedback"):
            return self._with_reask(Turn([], contact, intent="flow_reask"), session)
        if action == "more":
            settled = replace(contact, pending=None)
            return self._with_reask(self._more(settled, contact.pending or {}, language), session)
        if not text.strip() and inbound.media_urls:
            media = Turn([self._say(contact, "media_only", language)], contact, intent="media_only")
            return self._with_reask(media, session)
        if not self.flows.is_control(text):
            # A FAQ question in the middle of a survey is answered, then the question repeats.
            kind = self.flows.question_type(session)
            answer = self.flows.is_answer(session, text)
            # Feedback is never taken for a FAQ question: the person is telling us something.
            question_like = kind == "text" and "?" in text and session.kind == "survey"
            if not answer or question_like:
                interrupted = self._faq_interrupt(contact, text, language, strict=answer)
                if interrupted is not None:
                    return self._with_reask(interrupted, session)
        turn = self.flows.advance(contact, session, text, language, now)
        if turn is None:  # its definition is gone: close it and treat the message afresh
            closed = self.flows.end(contact, session, QUIT, now)
            assert closed.contact is not None
            fresh = self._handle(inbound, closed.contact, language, None, None, now)
            return replace(fresh, progress=closed.progress + fresh.progress)
        return turn

    def _faq_interrupt(
        self, contact: ContactState, text: str, language: Language, strict: bool
    ) -> Turn | None:
        """A FAQ answer when the model is sure the text is a FAQ question, else None."""
        if self.understand is None or not text.strip():
            return None
        try:
            understanding = self.understand(text)
        except NluUnavailable:
            return None
        decision = decide(understanding, set(self.faq), self.policy, text)
        if decision.kind != "answer":
            return None
        if strict and understanding.confidence < STRICT_INTERRUPT:
            return None
        return self._answer(contact, decision.topics[0], language, understanding.confidence)

    def _start_survey(
        self, contact: ContactState, named: str, language: Language, now: datetime
    ) -> Turn:
        flow = None
        if self.flows is not None:
            key = "_".join(normalize(named).split()) if named else None
            flow = self.flows.book.survey(key) or self.flows.book.survey()
        if flow is None or self.flows is None:
            return Turn([self._say(contact, "survey_none", language)], contact, intent="survey")
        turn = self.flows.begin(contact, flow, language, now)
        if turn is None:
            done = self._say(contact, "survey_already_done", language)
            return Turn([done], contact, intent="survey")
        return turn

    def _start_feedback(
        self, contact: ContactState, message: str, language: Language, now: datetime
    ) -> Turn:
        flow = self.flows.book.feedback if self.flows is not None else None
        if flow is None or self.flows is None:
            return Turn([self._say(contact, "help_menu", language)], contact, intent="feedback")
        turn = self.flows.begin(contact, flow, language, now, message=message)
        assert turn is not None
        return turn

    def _answer(
        self, contact: ContactState, key: str, language: Language, confidence: float | None
    ) -> Turn:
        topic = self.faq[key]
        pending: dict[str, Any] | None = None
        if topic.more:
            pending = {"more": key, "language": language.value}
        reply = self._send(contact, topic.answer[language], language, f"faq_{key}")
        updated = replace(contact, pending=pending)
        return Turn([reply], updated, intent=topic.intent, confidence=confidence)

    def _understood(
        self,
        contact: ContactState,
        understanding: Understanding,
        language: Language,
        now: datetime,
        text: str | None = None,
    ) -> Turn:
        decision = decide(understanding, set(self.faq), self.policy, text)
        confidence = understanding.confidence
        candidates = tuple((c.intent, round(c.confidence, 4)) for c in understanding.ranking[:3])
        if decision.kind == "answer":
            return self._answer(contact, decision.topics[0], language, confidence)
        if decision.kind == "suggest":
            lines = [self.content.texts.get("did_you_mean", language)]
            lines += [
                f"{n}) {self.faq[key].question[language]}"
                for n, key in enumerate(decision.topics, start=1)
            ]
            lines.append(self.content.texts.get("did_you_mean_reply", language))
            offer = self._send(contact, "\n".join(lines), language, "did_you_mean")
            return Turn(
                [offer],
                replace(contact, pending={"choices": list(decision.topics)}),
                intent=understanding.intent,
                confidence=confidence,
                unanswered=Unanswered("low_confidence", candidates),
            )
        intent = decision.intent
        if intent in SIMPLE_REPLIES:
            reply = self._say(contact, SIMPLE_REPLIES[intent], language)
            return Turn([reply], contact, intent=intent, confidence=confidence)
        if intent == "opt_out":
            return self._opt_out(contact, language, "nlu", None, now, confidence)
        if intent == "opt_in":
            reply = self._say(contact, "already_subscribed", language)
            return Turn([reply], contact, intent=intent, confidence=confidence)
        if intent == "talk_to_human":
            return Turn(
                [self._say(contact, "talk_to_human", language)],
                contact,
                intent=intent,
                confidence=confidence,
                unanswered=Unanswered("human_requested", candidates),
            )
        if intent in ("start_survey", "give_feedback"):
            if intent == "start_survey":
                started = self._start_survey(contact, "", language, now)
            else:
                started = self._start_feedback(contact, "", language, now)
            return replace(started, intent=intent, confidence=confidence)
        if intent is not None:
            reply = self._say(contact, "help_menu", language)
            return Turn([reply], contact, intent=intent, confidence=confidence)
        return Turn(
            [self._say(contact, "out_of_scope", language)],
            contact,
            intent=understanding.intent or "out_of_scope",
            confidence=confidence,
            unanswered=Unanswered("out_of_scope", candidates),
        )
