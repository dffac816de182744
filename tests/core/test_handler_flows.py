"""The bot with flows, as a pure function: any sequence of messages keeps sessions sound."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.content import Content
from bot.core.conversations import Conversations
from bot.core.handler import Bot
from bot.core.messages import Channel, ContactState, Inbound
from flows.engine import ACTIVE, Session
from flows.registry import FlowBook
from tests.support.clock import FakeClock
from tests.support.flows import kit, shipped

WORDS = [
    "SURVEY",
    "सर्वेक्षण",
    "FEEDBACK",
    "FEEDBACK tap broken",
    "STOP",
    "START",
    "HELP",
    "LANG",
    "MORE",
    "QUIT",
    "skip",
    "1",
    "2",
    "7",
    "१ ३",
    "yes",
    "hoina",
    "sabai",
    "12",
    "",
    "?",
]


def bot(clock: FakeClock) -> Bot:
    content = Content.load()
    flows = Conversations(FlowBook.from_files(shipped()), kit(), ttl=timedelta(hours=24))
    return Bot(content, flows=flows, clock=clock)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=30)), max_size=30),
    st.lists(st.integers(min_value=0, max_value=30 * 3600), max_size=30),
)
def test_any_messages_leave_a_sound_session_and_keep_every_answer(
    texts: list[str], gaps: list[int]
) -> None:
    clock = FakeClock()
    the_bot = bot(clock)
    contact = ContactState(phone="+9779800000001", channel=Channel.SMS)
    saved: dict[str, dict[str, object]] = {}  # session id → answers stored so far
    for n, text in enumerate(texts):
        clock.advance(gaps[n] if n < len(gaps) else 60)
        turn = the_bot.handle(Inbound(Channel.SMS, contact.phone, text), contact)
        assert turn.contact is not None
        contact = turn.contact
        for progress in turn.progress:
            session = Session.from_dict(progress.session)
            before = saved.get(session.id, {})
            assert all(session.answers.get(k) == v for k, v in before.items())
            saved[session.id] = dict(session.answers)
        if contact.session:
            session = Session.from_dict(contact.session)
            assert session.status == ACTIVE and session.question is not None
            flow = the_bot.flows.flow_of(session) if the_bot.flows else None
            assert flow is not None and flow.question(session.question)
        if contact.opted_out:
            assert contact.session is None
        if not contact.opted_out:
            assert turn.outbounds, text  # everyone who may hear from us gets an answer
