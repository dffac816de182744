from __future__ import annotations

import pytest

from bot.core.segments import count_segments


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("{" * 80, "GSM-7", 1),  # extension characters count double: 160 septets
        ("{" * 81, "GSM-7", 2),
        ("न" * 70, "UCS-2", 1),
        ("न" * 71, "UCS-2", 2),
        ("न" * 300, "UCS-2", 5),
        ("hello 🙂", "UCS-2", 1),
        ("🙂" * 35, "UCS-2", 1),  # surrogate pairs: 70 code units
        ("🙂" * 36, "UCS-2", 2),
    ],
)
def test_segments(text: str, encoding: str, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.segments) == (encoding, segments)
