"""Prompt-injection detection: a scored set of signals over every reading of a text (see `kernel.unmask`).

Two modes. `question`: a user's question that tries to override the rules, reveal the prompt or other
collections, switch the model into another persona, or dictate the answer, plainly or disguised. `document`: a
chunk whose text addresses the model (indirect injection), including hidden text; only the telling signals count
there (weight >= 0.6), as a long chunk gathers weak hints by chance.

Pure Python and cheap enough to run on every question, every chunk at ingestion and every sentence the extractive
generator considers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from kernel.injection_nearby import NEARBY
from kernel.injection_patterns import ADDRESSED, FOREIGN, PATTERNS, SQUASHED, Rule
from kernel.text import split_sentences
from kernel.unmask import Hidden, Reading, readings

Mode = Literal["question", "document"]

THRESHOLD = 1.0
# Below this a signal is a hint: it counts in questions, which are short, and not in documents.
TELLING = 0.6
# Enough for any question (the API limits them) and any chunk; a longer text is judged by its beginning.
MAX_SCAN = 20_000
FLAG = "injection"

KINDS = {
    "override": "an attempt to override the assistant's instructions",
    "reveal": "a request to reveal the assistant's prompt or instructions",
    "exfiltration": "a request for data of other collections or users",
    "roleplay": "a role-play jailbreak (another persona without rules)",
    "spoofing": "a fake system message or chat-turn marker",
    "output": "an attempt to dictate the answer",
    "addressed": "text addressed to an AI model",
    "hidden": "hidden text",
    "obfuscation": "an encoded or disguised instruction",
}


@dataclass(frozen=True)
class Signal:
    kind: str
    name: str
    weight: float
    via: str  # the disguise undone to see it; "text" when it is in plain sight
    excerpt: str


@dataclass(frozen=True)
class Detection:
    score: float
    signals: tuple[Signal, ...]

    @property
    def detected(self) -> bool:
        return self.score >= THRESHOLD

    @property
    def kinds(self) -> list[str]:
        """Kinds by weight, most first; disguises and hidden text only when nothing else is seen."""
        totals: dict[str, float] = {}
        for s in self.signals:
            totals[s.kind] = totals.get(s.kind, 0.0) + s.weight
        said = {k: w for k, w in totals.items() if k not in ("obfuscation", "hidden")}
        pool = said or totals
        return sorted(pool, key=lambda k: -pool[k])

    @property
    def kind(self) -> str:
        return self.kinds[0] if self.signals else "none"

    @property
    def disguises(self) -> list[str]:
        return sorted({s.via for s in self.signals if s.via != "text"})

    @property
    def label(self) -> str:
        """Short, for the audit log and counters: "override" or "override via base64"."""
        return self.kind + (f" via {', '.join(self.disguises)}" if self.disguises else "")

    def describe(self) -> str:
        """For the person who sent it: what was seen (up to three kinds, each with its words), and where it hid."""
        parts: list[str] = []
        for kind in self.kinds[:3]:
            best = max((s for s in self.signals if s.kind == kind), key=lambda s: s.weight)
            if best.weight < TELLING and parts:
                break
            parts.append(KINDS.get(kind, kind) + (f' ("{best.excerpt}")' if best.excerpt else ""))
        hid = f", hidden as {', '.join(self.disguises)}" if self.disguises else ""
        return " and ".join(parts) + hid


NOTHING = Detection(0.0, ())


def _excerpt(text: str, start: int, end: int) -> str:
    snippet = " ".join(text[start:end].split())
    return snippet if len(snippet) <= 80 else snippet[:77] + "..."


def _match(patterns: Sequence[Rule], reading: Reading, text: str, found: dict[str, Signal]) -> None:
    for p in patterns:
        if p.name in found:
            continue
        m = p.search(text)
        if m is not None:
            found[p.name] = Signal(p.kind, p.name, p.weight, reading.via, _excerpt(text, m.start(), m.end()))


def _hidden_signals(h: Hidden, mode: Mode) -> list[Signal]:
    doc = mode == "document"
    out = []
    if h.tag_characters:
        out.append(Signal("hidden", "invisible tag characters", 1.0 if doc else 0.6, "text", ""))
    if h.invisible_run >= 3:
        out.append(Signal("hidden", "a run of zero-width characters", 1.0 if doc else 0.4, "text", ""))
    elif h.invisible_in_words:
        out.append(Signal("obfuscation", "zero-width characters inside words", 0.3, "text", ""))
    if h.whitespace_hidden:
        out.append(Signal("hidden", "text pushed out of sight by whitespace", 1.0 if doc else 0.3, "text", ""))
    if h.mixed_script_words:
        out.append(Signal("obfuscation", "words mixing look-alike letters of two scripts", 0.4, "text", ""))
    return out


def detect_injection(text: str, mode: Mode = "question") -> Detection:
    views, hid = readings(text[:MAX_SCAN])
    found: dict[str, Signal] = {}
    extra = ADDRESSED if mode == "document" else NEARBY
    patterns: tuple[Rule, ...] = (*PATTERNS, *FOREIGN, *extra)
    for reading in views:
        _match(patterns, reading, reading.text, found)
        if reading.via == "spaced-out letters":
            _match(SQUASHED, reading, reading.text.replace(" ", ""), found)
    signals = list(found.values()) + _hidden_signals(hid, mode)
    disguised = sorted({s.via for s in signals if s.via != "text" and s.weight >= TELLING})
    if disguised:
        # Hiding an instruction is itself telling: nobody encodes a question they want answered plainly.
        signals.append(Signal("obfuscation", "a disguised instruction", 0.4, disguised[0], ""))
    if mode == "document":
        signals = [s for s in signals if s.weight >= TELLING or (s.kind == "obfuscation" and disguised)]
    return Detection(round(sum(s.weight for s in signals), 3), tuple(signals))


def injection_flags(text: str) -> list[str]:
    """The payload flags of a chunk: ["injection"] when its text addresses the model, else []."""
    return [FLAG] if detect_injection(text, "document").detected else []


def is_instruction(sentence: str) -> bool:
    """Whether a sentence of a document is itself an instruction to the model (never an answer)."""
    return detect_injection(sentence, "document").detected


def instruction_sentences(text: str) -> list[str]:
    return [s for s in split_sentences(text) if is_instruction(s)]
