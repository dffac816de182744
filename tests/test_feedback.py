"""Answering feedback: the text the person gets (reference included) is what is measured."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.core.segments import count_segments
from bot.db.models import Feedback, Message
from bot.feedback import FeedbackError, answer
from bot.runtime import Runtime
from tests.support.phone import Phone


def _reference(runtime: Runtime, phone: Phone) -> str:
    phone.send("FEEDBACK the bridge in ward 5 is unsafe")
    phone.send("complaint")
    phone.send("Ward 5")
    with runtime.db.read() as session:
        reference = session.scalar(select(Feedback.reference))
    assert reference
    return reference


def _answers(runtime: Runtime) -> list[Message]:
    with runtime.db.read() as session:
        return list(session.scalars(select(Message).where(Message.kind == "feedback_answer")))


def test_segments_are_counted_with_the_reference(runtime: Runtime, phone: Phone) -> None:
    reference = _reference(runtime, phone)
    text = "a" * 160  # one segment alone; two once "FB-…: " is in front of it
    assert count_segments(text).segments == 1

    answer(runtime, reference, text, by="Coord")

    [row] = _answers(runtime)
    assert row.body == f"{reference}: {text}"
    assert row.segments == count_segments(row.body).segments == 2
    assert phone.replies()[-1] == row.body


def test_the_limit_applies_to_the_text_with_its_reference(runtime: Runtime, phone: Phone) -> None:
    reference = _reference(runtime, phone)
    prefix = f"{reference}: "

    with pytest.raises(FeedbackError, match="1600"):
        answer(runtime, reference, "a" * (1601 - len(prefix)), by="Coord")

    assert _answers(runtime) == []
    with runtime.db.read() as session:
        feedback = session.scalar(select(Feedback))
        assert feedback is not None and (feedback.status, feedback.answer) == ("new", None)

    answer(runtime, reference, "a" * (1600 - len(prefix)), by="Coord")
    [row] = _answers(runtime)
    assert len(row.body) == 1600
