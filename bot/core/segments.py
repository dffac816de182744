"""How many SMS segments a text costs: GSM-7 (160/153) or UCS-2 (70/67)."""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "^{}\\[~]|€\f"
_BASIC = frozenset(GSM7_BASIC)
_EXTENSION = frozenset(GSM7_EXTENSION)


@dataclass(frozen=True)
class SegmentCount:
    """The encoding a text needs and the number of segments it is billed as."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def count_segments(text: str) -> SegmentCount:
    """Counts segments as carriers bill them.

    GSM-7 extension characters take two septets; anything outside GSM-7 (all Devanagari,
    most emoji) makes the whole text UCS-2, where characters outside the BMP take two units.

    >>> count_segments("hello").segments
    1
    >>> count_segments("न" * 71).segments
    2
    """
    if all(c in _BASIC or c in _EXTENSION for c in text):
        units = sum(2 if c in _EXTENSION else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    if units == 0:
        return SegmentCount(encoding, 0, 1)
    segments = 1 if units <= single else -(-units // part)
    return SegmentCount(encoding, units, segments)
