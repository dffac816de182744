"""The conversation core: `Bot.handle(inbound, contact) -> Turn`.

Keywords come first and override anything running; an opted-out contact hears nothing
until they opt in again. Everything else is answered from content in the contact's language.
"""

from __future__ import annotations

from dataclasses import replace

from bot.core.content import Content
from bot.core.keywords import detect_language, match_keyword
from bot.core.messages import ConsentChange, ContactState, Inbound, Language, Outbound, Turn


class Bot:
    """Decides what to answer. Pure apart from the content it was given."""

    def __init__(self, content: Content) -> None:
        self.content = content

    def reply_language(self, inbound: Inbound, contact: ContactState) -> Language:
        """The contact's saved preference, else the language of the message, else English."""
        if contact.language is not None:
            return contact.language
        return detect_language(inbound.body, self.content) or Language.EN

    def _say(self, contact: ContactState, key: str, language: Language, **kw: object) -> Outbound:
        return Outbound(
            channel=contact.channel,
            to=contact.phone,
            body=self.content.texts.get(key, language),
            language=language,
            kind=key,
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

        if not inbound.body.strip() and inbound.media_urls:
            return Turn([self._say(contact, "media_only", language)], contact, intent="media_only")
        return Turn([self._say(contact, "help_menu", language)], contact, intent="fallback_menu")
