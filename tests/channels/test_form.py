"""bot/channels/form.py writes exactly what urllib's urlencode writes."""

from __future__ import annotations

import random
from urllib.parse import quote_plus as urllib_quote_plus
from urllib.parse import urlencode

import pytest

from bot.channels.form import form_encode, quote_plus

# Every ASCII character, Devanagari with its danda, a Latin accent, emoji (four UTF-8 bytes),
# a no-break space and a zero-width joiner, and the characters the form gives a meaning to.
ALPHABET = [chr(c) for c in range(128)] + list("सामाजिक परिचालक।॥ é😀\u00a0\u200d%+&=")


def test_a_nepali_answer_and_twilio_fields_encode_as_urlencode_does() -> None:
    body = "सामाजिक परिचालक भनेको समुदायमा बसेर मानिसहरूलाई संगठित गर्ने व्यक्ति हो। 2 दिन, ३ पटक"
    pairs = [
        ("To", "whatsapp:+9779812345678"),
        ("Body", body),
        ("From", "+15005550006"),
        ("StatusCallback", "https://bot.example.org/webhooks/twilio/status?x=1&y=a b"),
        ("Attempt", 3),
    ]
    assert form_encode(pairs) == urlencode(pairs).encode()


def test_random_text_encodes_as_urlencode_does() -> None:
    rnd = random.Random(15)
    for n in range(5000):
        text = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 40)))
        assert quote_plus(text) == urllib_quote_plus(text), repr(text)
        pairs = [(text, text[::-1]), ("n", n)]
        assert form_encode(pairs) == urlencode(pairs).encode(), repr(text)


def test_a_lone_surrogate_fails_as_it_does_in_urllib() -> None:
    with pytest.raises(UnicodeEncodeError):
        urllib_quote_plus("a\ud800b")
    with pytest.raises(UnicodeEncodeError):
        quote_plus("a\ud800b")
