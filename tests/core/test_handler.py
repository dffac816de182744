"""The core on its own: no Flask, no Twilio, no database."""

from __future__ import annotations

import pytest

from bot.core.content import Content
from bot.core.handler import Bot
from bot.core.messages import Channel, Language
from tests.support.builders import make_contact, make_inbound


@pytest.fixture(scope="module")
def bot() -> Bot:
    return Bot(Content.load())


def test_stop_confirms_and_opts_out(bot: Bot) -> None:
    turn = bot.handle(make_inbound("STOP"), make_contact())
    assert turn.contact is not None and turn.contact.opted_out
    assert turn.consent is not None and turn.consent.opted_out
    [confirmation] = turn.outbounds
    assert confirmation.allow_opted_out
    assert "START" in confirmation.body


def test_opted_out_contact_gets_nothing_until_start(bot: Bot) -> None:
    contact = make_contact(opted_out=True)
    for text in ["hello", "HELP", "LANG", "STOP", "what is this"]:
        assert bot.handle(make_inbound(text), contact).outbounds == []
    turn = bot.handle(make_inbound("सुरु"), contact)
    assert turn.contact is not None and not turn.contact.opted_out
    assert turn.consent is not None and not turn.consent.opted_out
    assert [o.language for o in turn.outbounds] == [Language.NE]


def test_reply_language_follows_preference_then_script(bot: Bot) -> None:
    assert bot.handle(make_inbound("नमस्ते"), make_contact()).outbounds[0].language is Language.NE
    assert bot.handle(make_inbound("hello"), make_contact()).outbounds[0].language is Language.EN
    preferred = make_contact(language=Language.EN)
    assert bot.handle(make_inbound("नमस्ते"), preferred).outbounds[0].language is Language.EN


def test_lang_toggles_and_sets(bot: Bot) -> None:
    turn = bot.handle(make_inbound("LANG"), make_contact(language=Language.EN))
    assert turn.contact is not None and turn.contact.language is Language.NE
    assert turn.outbounds[0].language is Language.NE
    turn = bot.handle(make_inbound("lang english"), make_contact(language=Language.EN))
    assert turn.contact is not None and turn.contact.language is Language.EN


def test_media_only_and_empty(bot: Bot) -> None:
    media = bot.handle(
        make_inbound("").__class__(
            channel=Channel.SMS,
            sender="+9779800000001",
            body="",
            media_urls=("https://example.org/m.jpg",),
        ),
        make_contact(),
    )
    assert media.intent == "media_only"
    assert bot.handle(make_inbound(""), make_contact()).intent == "fallback_menu"


def test_replies_go_back_on_the_contacts_channel(bot: Bot) -> None:
    turn = bot.handle(
        make_inbound("help", Channel.WHATSAPP), make_contact(channel=Channel.WHATSAPP)
    )
    assert turn.outbounds[0].channel is Channel.WHATSAPP
