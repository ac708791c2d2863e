"""Structure-aware chunking: sections (titles) are boundaries, chunks are capped in model tokens and overlap.

Elements are cut into sentences, sentences are packed greedily into chunks of at most `max_tokens` word pieces,
a new title always starts a new chunk, and a chunk that continues a section repeats the last sentences of the
previous chunk (up to `overlap_tokens`) so that a fact cut at a boundary is still whole in one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kernel.text import split_sentences
from kernel.types import Chunk, ParsedElement

CountTokens = Callable[[Sequence[str]], list[int]]

_TITLE_TYPES = {"Title"}


@dataclass
class _Unit:
    text: str
    tokens: int
    element: int
    type: str
    page: int | None
    section: str | None


def _split_long(text: str, tokens: int, budget: int) -> list[str]:
    """A sentence longer than the budget (tables, run-on text) is cut into word windows of about `budget`."""
    words = text.split()
    if len(words) <= 1:
        # One enormous "word" (a URL, base64): cut by characters, ~4 characters a word piece.
        step = max(1, budget * 3)
        return [text[i : i + step] for i in range(0, len(text), step)]
    per_piece = max(1, int(len(words) * budget * 0.9 / max(tokens, 1)))
    return [" ".join(words[i : i + per_piece]) for i in range(0, len(words), per_piece)]


def _fit(text: str, tokens: int, budget: int, count_tokens: CountTokens) -> list[tuple[str, int]]:
    """Cut until every piece fits: the first cut is an estimate (text without spaces, dense scripts)."""
    if tokens <= budget:
        return [(text, tokens)]
    pieces = _split_long(text, tokens, budget)
    if len(pieces) == 1:
        # No progress possible by words: halve by characters.
        half = max(1, len(text) // 2)
        pieces = [text[:half], text[half:]]
    out: list[tuple[str, int]] = []
    for piece, n in zip(pieces, count_tokens(pieces), strict=True):
        out.extend(_fit(piece, n, budget, count_tokens))
    return out


def _units(elements: Sequence[ParsedElement], count_tokens: CountTokens, budget: int) -> list[_Unit]:
    raw: list[tuple[str, int, ParsedElement]] = []
    for i, el in enumerate(elements):
        parts = [el.text.strip()] if el.type in _TITLE_TYPES else split_sentences(el.text)
        raw.extend((p, i, el) for p in parts if p)
    counts = count_tokens([t for t, _, _ in raw])
    units: list[_Unit] = []
    for (text, i, el), n in zip(raw, counts, strict=True):
        for piece, pn in _fit(text, n, budget, count_tokens):
            units.append(_Unit(piece, pn, i, el.type, el.page, el.section))
    return units


def _render(units: Sequence[_Unit], index: int) -> Chunk:
    text_parts: list[str] = []
    for prev, unit in zip([None, *units[:-1]], units, strict=True):
        if prev is not None:
            text_parts.append(" " if prev.element == unit.element else "\n")
        text_parts.append(unit.text)
    pages = [u.page for u in units if u.page is not None]
    types = list(dict.fromkeys(u.type for u in units))
    return Chunk(
        index=index,
        text="".join(text_parts),
        tokens=sum(u.tokens for u in units),
        page=min(pages) if pages else None,
        page_end=max(pages) if pages else None,
        section=next((u.section for u in reversed(units) if u.section), None),
        element_types=types,
    )


def chunk_elements(
    elements: Sequence[ParsedElement], count_tokens: CountTokens, max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    units = _units(elements, count_tokens, max_tokens)
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    size = 0
    for unit in units:
        starts_section = unit.type in _TITLE_TYPES and current
        if starts_section or (current and size + unit.tokens > max_tokens):
            groups.append(current)
            carry: list[_Unit] = []
            if not starts_section and overlap_tokens > 0:
                kept = 0
                for prev in reversed(current):
                    if kept + prev.tokens > overlap_tokens or prev.type in _TITLE_TYPES:
                        break
                    carry.insert(0, prev)
                    kept += prev.tokens
                # Repeating the whole previous chunk would make no progress.
                if len(carry) == len(current):
                    carry = []
            current, size = carry, sum(u.tokens for u in carry)
        current.append(unit)
        size += unit.tokens
    if current:
        groups.append(current)
    return [_render(g, i) for i, g in enumerate(groups)]
