"""Indirect injection at answer time: chunks flagged at ingestion as addressing the model are left out or quoted as
data, by their collection's `flagged_chunks` policy; an LLM answer that repeats what an instruction asked for is
withheld. The counters of every guardrail event live here too.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from kernel.injection import FLAG, detect_injection, injection_flags, instruction_sentences
from kernel.ports import PolicyReader
from kernel.text import split_sentences
from kernel.types import Hit

log = logging.getLogger(__name__)


@dataclass
class GuardStats:
    """Guardrail events since the service started (the audit log keeps each one with its request)."""

    questions: Counter[str] = field(default_factory=Counter)  # detected injection attempts, by label
    refused: int = 0
    answered_as_data: int = 0
    searches: int = 0  # detected in a search query: recorded, not refused (no model reads a query)
    chunks_excluded: int = 0
    chunks_quoted: int = 0
    answers_withheld: int = 0

    def snapshot(self) -> dict[str, object]:
        return {
            "questions": dict(self.questions),
            "refused": self.refused,
            "answered_as_data": self.answered_as_data,
            "searches": self.searches,
            "chunks_excluded": self.chunks_excluded,
            "chunks_quoted": self.chunks_quoted,
            "answers_withheld": self.answers_withheld,
        }


@dataclass
class Screened:
    hits: list[Hit]
    excluded: int = 0
    quoted: int = 0


def _flags(hit: Hit) -> list[str]:
    flags = hit.payload.get("flags")
    # Chunks indexed before flags existed have none stored: judged now, which costs a millisecond or two.
    return list(flags) if flags is not None else injection_flags(str(hit.payload.get("text", "")))


async def screen_hits(hits: list[Hit], policies: PolicyReader, top_k: int) -> Screened:
    """The hits an answer may use (at most `top_k`), flagged ones excluded or kept with their flag by policy."""
    flagged = {h.chunk_id for h in hits if FLAG in _flags(h)}
    if not flagged:
        return Screened(hits[:top_k])
    names = sorted({str(h.payload["collection"]) for h in hits if h.chunk_id in flagged})
    rules = await policies.policies(names)
    kept: list[Hit] = []
    out = Screened(kept)
    for h in hits:
        if h.chunk_id not in flagged:
            kept.append(h)
        elif rules[str(h.payload["collection"])].flagged_chunks == "exclude":
            out.excluded += 1
        else:
            kept.append(h.model_copy(update={"payload": {**h.payload, "flags": sorted({*_flags(h), FLAG})}}))
    out.hits = kept[:top_k]
    out.quoted = sum(1 for h in out.hits if h.chunk_id in flagged)
    return out


# What an instruction asks a model to say: a quoted phrase, a word in capitals, an address, "the word X".
_QUOTED = re.compile(r"[\"'\u2018\u201c]([^\"'\u2019\u201d]{2,60})[\"'\u2019\u201d]")
_CAPITALS = re.compile(r"\b[A-Z][A-Z0-9_-]{2,}\b")
_ADDRESS = re.compile(r"\b(?:https?://\S+|[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|xyz|info|ru|cn)\b)", re.I)
_SAY_WORD = re.compile(r"\b(?:the (?:single )?word|the phrase|say|reply with|respond with|answer with)\s+(\w+)", re.I)
# Capitals that shout an instruction rather than name what to say.
_EMPHASIS = frozenset(
    "important urgent note warning attention must not never always only all any new system update stop ignore "
    "instructions instruction previous rules prompt assistant user admin ai llm".split()
)


def _payload(sentence: str) -> set[str]:
    found = {m.group(1) for m in _QUOTED.finditer(sentence)}
    found |= set(_CAPITALS.findall(sentence)) | set(_ADDRESS.findall(sentence)) | set(_SAY_WORD.findall(sentence))
    return {p.strip().lower() for p in found if p.strip() and p.strip().lower() not in _EMPHASIS}


def planted_phrases(untrusted: Sequence[str], trusted: Sequence[str]) -> set[str]:
    """What the instructions inside untrusted text ask to be said, less anything the rest of the text says too: an
    answer would only contain it by obeying."""
    wanted: set[str] = set()
    facts: list[str] = list(trusted)
    for text in untrusted:
        orders = instruction_sentences(text)
        for sentence in orders:
            wanted |= _payload(sentence)
        facts.extend(s for s in split_sentences(text) if s not in orders)
    known = " ".join(facts).lower()
    return {w for w in wanted if not re.search(rf"(?<!\w){re.escape(w)}(?!\w)", known)}


def obeys_injection(answer: str, planted: set[str]) -> bool:
    """Whether an LLM answer repeats what an instruction asked for, or is itself an instruction or a leak."""
    lower = answer.lower()
    if any(re.search(rf"(?<!\w){re.escape(p)}(?!\w)", lower) for p in planted):
        return True
    return detect_injection(answer, "document").detected
