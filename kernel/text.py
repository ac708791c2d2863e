"""Text utilities every layer shares: sentence splitting and the [n] citation markers of answers."""

from __future__ import annotations

import re

# A sentence ends at . ! ? followed by space and something that can start a sentence, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])|\n+")

# "[2]", "[1, 3]", "[2-4]", "[2–4]": one marker, the numbers (or ranges) in group 1.
CITATION_MARKER = re.compile(r"\[(\d+(?:\s*[,\u2013-]\s*\d+)*)\]")
_MARKER_WITH_SPACE = re.compile(r"\s*" + CITATION_MARKER.pattern)
_RANGE = re.compile(r"(\d+)\s*[\u2013-]\s*(\d+)|(\d+)")
# A range longer than this is not a citation anyone meant ("[1-2024]"); only its ends count.
_MAX_RANGE = 20


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def marker_numbers(marker_body: str) -> list[int]:
    """The context numbers one marker cites, ranges expanded: "1, 3-5" -> [1, 3, 4, 5]."""
    numbers: list[int] = []
    for low, high, single in _RANGE.findall(marker_body):
        if single:
            numbers.append(int(single))
            continue
        a, b = int(low), int(high)
        numbers.extend(range(a, b + 1) if 0 <= b - a <= _MAX_RANGE else (a, b))
    return numbers


def strip_citation_markers(text: str) -> str:
    """The text without its [n] markers (and the space before each)."""
    return _MARKER_WITH_SPACE.sub("", text)
