"""Synthetic training and held-out data for the support checker, made from passages by rules (seeded).

Every example is (a, b, label): `a` is what is checked (`checker_text(question, answer)`), `b` a source window,
`label` 1 when the window supports it. From one passage come:

- claims: a sentence, or a shortened part of it (positive); the same with an entity, number or date swapped, a
  negation or an up/down direction flipped, a clause from another passage appended (negatives); a sentence of
  another passage, and another sentence of the same passage, against a window without it (negatives);
- short answers: a cloze question made from a sentence by replacing an entity with a wh-phrase; the entity, or the
  sentence itself, answers it (positive); another entity of the same kind from the passage or from elsewhere, or
  the sentence with that entity in place, does not (negatives);
- answerability: the cloze question against the window it came from (positive) and against a window of another
  passage (negative).

The same functions make the held-out set `evals.validate` reports on, from passages never used in training.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from evals.checker_text import checker_text, windows_of
from evals.faithfulness import flipped
from kernel.text import split_sentences

_MONTHS = "January February March April May June July August September October November December".split()
_DATE = re.compile(rf"\b(?:\d{{1,2}} )?(?:{'|'.join(_MONTHS)})(?: \d{{1,2}})?,? \d{{4}}\b")
_YEAR = re.compile(r"(?<![\w-])(1[0-9]{3}|20[0-9]{2})(?![\w-])")
_NUMBER = re.compile(r"(?<![\w-])\d+(?:[.,]\d+)?(?: ?%| percent)?(?![\w-])")
# A run of capitalised words (or acronyms, gene names) that is not the first word of the sentence.
_NAME = re.compile(r"(?<!^)(?<![.!?] )\b(?:[A-Z][\w'-]*[A-Za-z0-9](?: (?:of |de |the |von )?[A-Z][\w'-]*[A-Za-z0-9])*)")
_NOT_NAMES = frozenset("The A An In On At For It This That These Those However We Our Here There I".split())
_CONNECTORS = ("and", "which", "while", "because", "after", "so")
_AUX = re.compile(r"\b(is|are|was|were|can|could|does|do|did|has|have|had|will|may|might|should|would)\b")
_NEG = re.compile(r"\b(?:not|never|no)\s+", re.I)


@dataclass(frozen=True)
class Example:
    question: str | None
    answer: str | None
    b: str
    label: int
    kind: str
    passage: str = ""

    @property
    def a(self) -> str:
        return checker_text(self.question, self.answer)


# Kinds whose label holds for the answer against the whole passage (not only against the window): what the
# held-out answer-level set is made of.
ANSWER_LEVEL = frozenset(
    "claim claim_short claim_swap claim_negation claim_elsewhere claim_addition qa_entity qa_sentence "
    "qa_wrong_entity qa_wrong_sentence".split()
)


@dataclass(frozen=True)
class Neighbourhood:
    """What examples of one sentence draw on besides the sentence: its passage's entities, other passages'
    sentences and windows."""

    pool: Sequence[Entity]
    elsewhere: Sequence[str]
    far_windows: Sequence[str]


@dataclass(frozen=True)
class Entity:
    text: str
    kind: str  # date, year, number, name


def held_out(key: str, share: float = 0.1) -> bool:
    """Stable partition by key: the same passages are held out on every machine and every run."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def entities(sentence: str) -> list[Entity]:
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []

    def add(m: re.Match[str], kind: str) -> None:
        span = m.span()
        if any(span[0] < e and s < span[1] for s, e in taken):
            return
        taken.append(span)
        found.append(Entity(m.group(0).strip(), kind))

    for m in _DATE.finditer(sentence):
        add(m, "date")
    for m in _YEAR.finditer(sentence):
        add(m, "year")
    for m in _NUMBER.finditer(sentence):
        add(m, "number")
    for m in _NAME.finditer(sentence):
        if m.group(0) not in _NOT_NAMES:
            add(m, "name")
    return found


_WH = {"date": "on what date", "year": "in what year", "number": "how many", "name": "what"}


def cloze_question(sentence: str, entity: Entity, rng: random.Random) -> str:
    body = sentence.rstrip(" .!?")
    wh = _WH[entity.kind]
    if entity.kind == "year":
        body = re.sub(rf"\b(?:in|In) {re.escape(entity.text)}\b", "in what year", body, count=1)
        wh = "what year"
    elif entity.kind == "date":
        body = re.sub(rf"\b(?:on|On) {re.escape(entity.text)}\b", "on what date", body, count=1)
        wh = "what date"
    elif (entity.kind == "number" and "%" in entity.text) or "percent" in entity.text:
        wh = "what percentage"
    elif entity.kind == "name" and re.search(rf"\bby {re.escape(entity.text)}", body):
        wh = "whom"
    question = body.replace(entity.text, wh, 1) if entity.text in body else body
    prefix = rng.choice(("", "", "", "According to the text, ", "Do you know: "))
    return f"{prefix}{question}?"


def swap_entity(sentence: str, entity: Entity, pool: Sequence[Entity], rng: random.Random) -> str | None:
    """The sentence with `entity` replaced by another of the same kind (a plausible hallucination)."""
    same = [e for e in pool if e.kind == entity.kind and e.text != entity.text and e.text not in sentence]
    if same:
        other = rng.choice(same).text
    elif entity.kind in ("number", "year"):
        digits = re.sub(r"[^\d]", "", entity.text) or "1"
        other = entity.text.replace(digits, str(int(digits) + rng.choice((1, 2, 3, 5, 10, 12))), 1)
    else:
        return None
    return sentence.replace(entity.text, other, 1)


def negated(sentence: str) -> str | None:
    """Toggle a negation, or flip an up/down direction word; None when neither applies."""
    if _NEG.search(sentence):
        return _NEG.sub("", sentence, count=1)
    flip = flipped(sentence)
    if not flip.startswith("It is not true that"):
        return flip
    m = _AUX.search(sentence)
    return f"{sentence[: m.end()]} not{sentence[m.end() :]}" if m else None


def shortened(sentence: str, rng: random.Random) -> str | None:
    """A faithful shorter form: without a parenthesis, or up to a clause boundary."""
    no_paren = re.sub(r"\s*\([^()]*\)", "", sentence)
    if no_paren != sentence and len(no_paren.split()) >= 4:
        return no_paren
    parts = re.split(r",\s+(?:which|who|while|and|but|although|whereas)\s+|;\s+", sentence)
    if len(parts) > 1 and len(parts[0].split()) >= 5:
        return parts[0].rstrip(" ,") + "."
    return None


def clause(sentence: str) -> str:
    """The opening clause of another sentence (up to 14 words, cut at a comma), to append as an unsupported
    addition that reads naturally."""
    first = re.split(r",\s+|;\s+", sentence.rstrip(" .!?"))[0]
    words = first.split()[:14]
    if words and not (words[0].isupper() or (len(words[0]) > 1 and words[0][1].isupper())):
        words[0] = words[0].lower()
    return " ".join(words)


def _window_with(wins: Sequence[tuple[int, int, str]], index: int, rng: random.Random) -> str:
    return rng.choice([w for s, e, w in wins if s <= index < e])


def _window_without(wins: Sequence[tuple[int, int, str]], index: int, rng: random.Random) -> str | None:
    others = [w for s, e, w in wins if not s <= index < e]
    return rng.choice(others) if others else None


def passage_examples(
    sentences: Sequence[str], others: Sequence[Sequence[str]], rng: random.Random, per_passage: int = 4
) -> Iterator[Example]:
    """Examples from one passage (split into sentences); `others` are sentences of other passages."""
    passage = " ".join(sentences)
    for ex in _passage_examples(sentences, others, rng, per_passage):
        yield replace(ex, passage=passage)


def _passage_examples(
    sentences: Sequence[str], others: Sequence[Sequence[str]], rng: random.Random, per_passage: int
) -> Iterator[Example]:
    wins = windows_of(list(sentences))
    usable = [i for i, s in enumerate(sentences) if 6 <= len(s.split()) <= 60]
    if not usable or not wins:
        return
    near = Neighbourhood(
        pool=[e for s in sentences for e in entities(s)],
        elsewhere=[s for o in others for s in o if 6 <= len(s.split()) <= 60],
        far_windows=[w for o in others for *_, w in windows_of(list(o))],
    )
    for i in rng.sample(usable, min(per_passage, len(usable))):
        s = sentences[i]
        win = _window_with(wins, i, rng)
        yield from _claim_examples(s, win, near, rng)
        if (away := _window_without(wins, i, rng)) is not None and rng.random() < 0.5:
            yield Example(None, s, away, 0, "claim_other_window")
        ents = [e for e in entities(s) if len(e.text) > 1]
        if ents:
            ent = rng.choice(ents)
            yield from _qa_examples(s, ent, win, near, rng)
            # Answer selection reads single sentences: the one that answers, and a sibling that does not.
            q = cloze_question(s, ent, rng)
            yield Example(q, None, s, 1, "answerable_sentence")
            siblings = [t for j, t in enumerate(sentences) if j != i and ent.text not in t and len(t.split()) >= 5]
            if siblings:
                yield Example(q, None, rng.choice(siblings), 0, "unanswerable_sibling")
            if rng.random() < 0.3:
                # A heading or FAQ entry that restates the question does not answer it.
                yield Example(q, None, cloze_question(s, ent, rng), 0, "unanswerable_echo")


def _claim_examples(s: str, win: str, near: Neighbourhood, rng: random.Random) -> Iterator[Example]:
    pool, elsewhere = near.pool, near.elsewhere
    yield Example(None, s, win, 1, "claim")
    if (short := shortened(s, rng)) is not None:
        yield Example(None, short, win, 1, "claim_short")
    ents = entities(s)
    if ents and (swapped := swap_entity(s, rng.choice(ents), pool, rng)) is not None:
        yield Example(None, swapped, win, 0, "claim_swap")
    if (neg := negated(s)) is not None and neg != s and rng.random() < 0.7:
        yield Example(None, neg, win, 0, "claim_negation")
    if elsewhere:
        other = rng.choice(elsewhere)
        if rng.random() < 0.5:
            yield Example(None, other, win, 0, "claim_elsewhere")
        added = f"{s.rstrip(' .!?')}, {rng.choice(_CONNECTORS)} {clause(other)}."
        yield Example(None, added, win, 0, "claim_addition")


def _qa_examples(s: str, ent: Entity, win: str, near: Neighbourhood, rng: random.Random) -> Iterator[Example]:
    pool, elsewhere, far_windows = near.pool, near.elsewhere, near.far_windows
    q = cloze_question(s, ent, rng)
    yield Example(q, ent.text, win, 1, "qa_entity")
    if rng.random() < 0.3:
        yield Example(q, s, win, 1, "qa_sentence")
    wrong = [e for e in pool if e.kind == ent.kind and e.text != ent.text and e.text not in ent.text]
    far = [e for o in rng.sample(list(elsewhere), min(8, len(elsewhere))) for e in entities(o) if e.kind == ent.kind]
    choices = wrong or far
    if choices:
        other = rng.choice(choices)
        yield Example(q, other.text, win, 0, "qa_wrong_entity")
        if rng.random() < 0.4:
            yield Example(q, s.replace(ent.text, other.text, 1), win, 0, "qa_wrong_sentence")
    yield Example(q, None, win, 1, "answerable")
    if far_windows and rng.random() < 0.6:
        yield Example(q, None, rng.choice(far_windows), 0, "unanswerable_elsewhere")


def synthetic(passages: list[str], rng: random.Random, per_passage: int) -> Iterator[Example]:
    split = [split_sentences(p) for p in passages]
    for i, sentences in enumerate(split):
        others = [split[(i + k) % len(split)] for k in (1, 2, 3)]
        yield from passage_examples(sentences, others, rng, per_passage)
