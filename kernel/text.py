"""Text utilities every layer shares: sentence splitting, the [n] citation markers of answers, and the check for
text that JSON can carry but UTF-8 cannot."""

from __future__ import annotations

import hashlib
import re
from typing import Any

# A sentence ends at . ! ? followed by space and something that can start a sentence, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])|\n+")

# "[2]", "[1, 3]", "[2-4]", "[2–4]": one marker, the numbers (or ranges) in group 1.
CITATION_MARKER = re.compile(r"\[(\d+(?:\s*[,\u2013-]\s*\d+)*)\]")
_MARKER_WITH_SPACE = re.compile(r"\s*" + CITATION_MARKER.pattern)
_RANGE = re.compile(r"(\d+)\s*[\u2013-]\s*(\d+)|(\d+)")
# A range longer than this is not a citation anyone meant ("[1-2024]"); only its ends count.
_MAX_RANGE = 20


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


# Shorter "sentences" are headings and labels, not answers; longer ones are lists or tables run together.
ANSWER_MIN_WORDS, ANSWER_MAX_WORDS = 5, 120


def answer_sentences(text: str, section: str | None) -> list[tuple[str, str]]:
    """The sentences of a chunk an extractive answer may quote, each as (sentence, framed): framed is what is
    encoded, the sentence behind its section title, which resolves "it" and "they" for the embedding. Ingestion
    encodes the framed sentences ahead and answering looks them up, so both must make them here."""
    out = []
    for s in split_sentences(text):
        if ANSWER_MIN_WORDS <= len(s.split()) <= ANSWER_MAX_WORDS:
            out.append((s, f"{section}: {s}" if section and section not in s else s))
    return out


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


# JSON may escape half of a UTF-16 surrogate pair ("\udfff"); Python decodes it to a str that no UTF-8 encoder,
# database driver or tokenizer accepts. A pair ("\ud83d\ude00") decodes to one character and is fine.
_SURROGATE = re.compile("[\ud800-\udfff]")

JsonPath = tuple[str | int, ...]


def lone_surrogate(value: Any) -> tuple[JsonPath, str] | None:
    """Where decoded JSON holds an unpaired UTF-16 surrogate: the path of the first such string, or of the object
    whose key holds it, and the surrogate written as an escape ("\\udfff"). None when the value is clean."""
    todo: list[tuple[JsonPath, Any]] = [((), value)]
    while todo:  # iterative: a deeply nested document must not exhaust the stack here
        path, item = todo.pop()
        if isinstance(item, str):
            if found := _SURROGATE.search(item):
                return path, f"\\u{ord(found.group()):04x}"
        elif isinstance(item, dict):
            for key in item:
                if isinstance(key, str) and (found := _SURROGATE.search(key)):
                    return path, f"\\u{ord(found.group()):04x}"
            todo.extend(((*path, key), child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            todo.extend(((*path, i), child) for i, child in reversed(list(enumerate(item))))
    return None


def without_surrogates(text: str) -> str:
    """The text with each unpaired surrogate written out as its escape, so an error message can quote it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
