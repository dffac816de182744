"""The conversation core: `Bot.handle(inbound, contact) -> Turn`.

Keywords come first and override anything running; an opted-out contact hears nothing
until they opt in again. Everything else is answered from content in the contact's language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.core.content import Content
from bot.core.faq import NluPolicy, decide
from bot.core.keywords import detect_language, match_keyword
from bot.core.messages import (
    ConsentChange,
    ContactState,
    Inbound,
    Language,
    Outbound,
    Turn,
    Unanswered,
)
from bot.core.text import normalize
from bot.core.understanding import NluUnavailable, Understand, Understanding
from nlu.catalogue import FaqTopic

# Conversational intents answered with one text of data/messages.yml.
SIMPLE_REPLIES = {"greet": "greet", "goodbye": "goodbye", "thanks": "thanks", "help": "help_menu"}


class Bot:
    """Decides what to answer. Pure apart from the content it was given."""

    def __init__(
        self,
        content: Content,
        faq: Mapping[str, FaqTopic] | None = None,
        understand: Understand | None = None,
        policy: NluPolicy | None = None,
    ) -> None:
        self.content = content
        self.faq = dict(faq or {})
        self.understand = understand
        self.policy = policy or NluPolicy()

    def reply_language(self, inbound: Inbound, contact: ContactState) -> Language:
        """The contact's saved preference, else the language of the message, else English."""
        if contact.language is not None:
            return contact.language
        return detect_language(inbound.body, self.content) or Language.EN

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
        language = self.reply_language(inbound, contact)
        keyword = match_keyword(inbound.body, self.content.keywords)
        action = keyword.action if keyword else None

        if contact.opted_out:
            if action != "opt_in":
                return Turn(contact=contact, intent="ignored_opted_out")
            updated = replace(contact, opted_out=False)
            return Turn(
                [self._say(updated, "opt_in_confirmation", language)],
                updated,
                ConsentChange(opted_out=False, reason="keyword"),
                intent="opt_in",
            )

        if action == "opt_out":
            updated = replace(contact, opted_out=True)
            confirmation = self._say(
                updated, "opt_out_confirmation", language, allow_opted_out=True
            )
            return Turn([confirmation], updated, ConsentChange(True, "keyword"), intent="opt_out")
        if action == "opt_in":
            return Turn(
                [self._say(contact, "already_subscribed", language)], contact, intent="opt_in"
            )
        if action == "language":
            assert keyword is not None
            current = contact.language or language
            chosen = keyword.argument or (Language.NE if current is Language.EN else Language.EN)
            updated = replace(contact, language=chosen)
            return Turn([self._say(updated, "language_set", chosen)], updated, intent="language")
        if action == "help":
            return Turn([self._say(contact, "help_menu", language)], contact, intent="help")

        pending = dict(contact.pending or {})
        settled = replace(contact, pending=None)  # any other message ends what was pending
        if action == "more":
            topic = self.faq.get(str(pending.get("more")))
            if topic is None or topic.more is None:
                return Turn([self._say(settled, "no_more", language)], settled, intent="more")
            # MORE continues in the answer's language, whatever language "MORE" looks like.
            language = Language(pending.get("language", language.value))
            more = self._send(settled, topic.more[language], language, f"faq_{topic.key}_more")
            return Turn([more], settled, intent="more")
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
            return Turn(
                [self._say(settled, "nlu_unavailable", language)],
                settled,
                intent="nlu_unavailable",
                unanswered=Unanswered("nlu_unavailable"),
            )
        return self._understood(settled, understanding, language)

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
        self, contact: ContactState, understanding: Understanding, language: Language
    ) -> Turn:
        decision = decide(understanding, set(self.faq), self.policy)
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
            updated = replace(contact, opted_out=True)
            confirmation = self._say(
                updated, "opt_out_confirmation", language, allow_opted_out=True
            )
            consent = ConsentChange(True, "nlu")
            return Turn([confirmation], updated, consent, intent=intent, confidence=confidence)
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
        if intent is not None:  # start_survey, give_feedback: their flows come with surveys
            reply = self._say(contact, "help_menu", language)
            return Turn([reply], contact, intent=intent, confidence=confidence)
        return Turn(
            [self._say(contact, "out_of_scope", language)],
            contact,
            intent=understanding.intent or "out_of_scope",
            confidence=confidence,
            unanswered=Unanswered("out_of_scope", candidates),
        )
