"""Offline faithfulness: split an answer into claims, find each claim's best support in the contexts with the
local embedding model, then check what similarity alone misses (numbers, named entities, negation, direction).

Groundwork for the groundedness issue: `OfflineFaithfulness.score()` is the claim-level core the offline Scorer
will build on; `evals/validate.py` measures it against labelled pairs. `verdicts_many()` / `score_many()` do the
same for a batch of answers with one encoder call for all claims and one for all (uncached) source sentences.
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from evals.claims import ClaimItem, ClaimVerdict
from kernel.protocols import Embedder
from kernel.text import split_sentences, strip_citation_markers

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATION = re.compile(r"\b(not|no|never|none|neither|nor|cannot|without|n't|fails?|lack(?:s|ed)?)\b", re.I)
_PROPER = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]+\b")
_WORD = re.compile(r"[A-Za-z]+")


def _inflect(verbs: str) -> list[str]:
    out = []
    for v in verbs.split():
        stem = v[:-1] if v.endswith("e") else v
        out += [v, v + "s", stem + "ed", stem + "ing"]
    return out


# Direction of an effect: a claim that says "raises" against a source that says "lowers" is contradicted.
# Each list is ordered so that the i-th word flips to the i-th word of the other (for the contrast check).
_UP_VERBS = "increase enhance promote raise elevate improve accelerate activate stimulate upregulate augment strengthen"
_DOWN_VERBS = "decrease reduce inhibit lower diminish impair slow suppress attenuate downregulate block weaken"
_UP = [
    *_inflect(_UP_VERBS),
    "higher",
    "more",
    "greater",
    "larger",
    "longer",
    "faster",
    "positive",
    "positively",
    "better",
    "stronger",
    "gain",
    "improvement",
    "rise",
]
_DOWN = [
    *_inflect(_DOWN_VERBS),
    "lower",
    "less",
    "fewer",
    "smaller",
    "shorter",
    "slower",
    "negative",
    "negatively",
    "worse",
    "weaker",
    "loss",
    "impairment",
    "decline",
]
_DIRECTION = {**dict.fromkeys(_UP, 1), **dict.fromkeys(_DOWN, -1)}
_FLIP = {**dict(zip(_UP, _DOWN, strict=True)), **dict(zip(_DOWN, _UP, strict=True))}


def claims_of(answer: str) -> list[str]:
    text = strip_citation_markers(answer)
    return [s for s in split_sentences(text) if len(s.split()) >= 3]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _names(text: str) -> set[str]:
    return {m.group(0).lower() for m in _PROPER.finditer(text)}


def direction(text: str) -> int:
    """+1 if the text only says up (increases, higher, ...), -1 if it only says down, 0 if neither or both."""
    signs = {_DIRECTION[w] for w in (m.lower() for m in _WORD.findall(text)) if w in _DIRECTION}
    return signs.pop() if len(signs) == 1 else 0


def flipped(claim: str) -> str:
    """The claim with every direction word replaced by its opposite, or else with its negation toggled."""
    words = _WORD.sub(lambda m: _FLIP.get(m.group(0).lower(), m.group(0)), claim)
    if words != claim:
        return words
    if _NEGATION.search(claim):
        return _NEGATION.sub("", claim, count=1).replace("  ", " ")
    for verb in (" is ", " are ", " was ", " were ", " can ", " has ", " have ", " does ", " do "):
        if verb in claim:
            return claim.replace(verb, f"{verb}not ", 1)
    return "It is not true that " + claim


def _units(contexts: Sequence[str]) -> tuple[list[tuple[int, str]], list[tuple[int, int]]]:
    """Source sentences (context index, text), and the index pairs of adjacent sentences of one context."""
    units: list[tuple[int, str]] = []
    pairs: list[tuple[int, int]] = []
    for i, ctx in enumerate(contexts):
        start = len(units)
        units.extend((i, s) for s in split_sentences(ctx))
        pairs.extend(itertools.pairwise(range(start, len(units))))
    return units, pairs


class OfflineFaithfulness:
    """The similarity method: the fallback claim judge when the support checker's model file is missing."""

    method = "similarity"

    def __init__(
        self,
        embedder: Embedder,
        threshold: float = 0.6,
        cache_size: int = 50_000,
        contrast_weight: float = 2.0,
        top_k: int = 3,
    ) -> None:
        self._embedder = embedder
        self._threshold = threshold
        self._contrast_weight = contrast_weight
        # Negation and direction are checked against the top_k best source units, not only the best one.
        self._top_k = top_k
        # The same chunks are cited again and again: their sentence vectors are worth keeping.
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    @property
    def version(self) -> str:
        return f"similarity-1-t{self._threshold:g}"

    def _unit_vectors(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vec in zip(missing, self._embedder.embed_documents(missing), strict=True):
                self._cache[text] = np.asarray(vec, dtype=np.float32)
        for text in texts:
            self._cache.move_to_end(text)
        vectors = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vectors

    def _encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        vectors = np.asarray(self._embedder.embed_documents(unique), dtype=np.float32)
        return dict(zip(unique, vectors, strict=True))

    def verdicts(self, answer: str, contexts: Sequence[str]) -> list[ClaimVerdict]:
        """Blocking (encodes with the model)."""
        return self.verdicts_many([(answer, contexts)])[0]

    def judge_many(self, items: Sequence[ClaimItem]) -> list[list[ClaimVerdict]]:
        """The `ClaimJudge` form: this method ignores the question."""
        return self.verdicts_many([(item.answer, item.contexts) for item in items])

    def verdicts_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[ClaimVerdict]]:
        """Verdicts for many (answer, contexts) at once: one encoder call for the claims, one for the sources."""
        claims = [claims_of(answer) for answer, _ in items]
        units = [_units(contexts) for _, contexts in items]
        claim_vecs = self._encode([t for cs in claims for c in cs for t in (c, flipped(c))])
        unit_vecs = self._unit_vectors([u for us, _ in units for _, u in us])
        out, start = [], 0
        for (_, contexts), cs, (us, pairs) in zip(items, claims, units, strict=True):
            vecs = unit_vecs[start : start + len(us)]
            start += len(us)
            if pairs:
                # A claim often fuses two adjacent sentences: the pair's vector is the normalised sum of theirs
                # (close to encoding the pair, at no encoder cost).
                a, b = (list(x) for x in zip(*pairs, strict=True))
                both = vecs[a] + vecs[b]
                both /= np.linalg.norm(both, axis=1, keepdims=True)
                us = us + [(us[i][0], f"{us[i][1]} {us[j][1]}") for i, j in pairs]
                vecs = np.concatenate([vecs, both])
            out.append(self._judge(cs, contexts, us, vecs, claim_vecs))
        return out

    def _judge(
        self,
        claims: list[str],
        contexts: Sequence[str],
        units: list[tuple[int, str]],
        unit_vecs: np.ndarray,
        claim_vecs: dict[str, np.ndarray],
    ) -> list[ClaimVerdict]:
        if not claims or not units:
            return [ClaimVerdict(c, False, None, None, 0.0, "no context") for c in claims]
        sims = np.stack([claim_vecs[c] for c in claims]) @ unit_vecs.T
        flip_sims = np.stack([claim_vecs[flipped(c)] for c in claims]) @ unit_vecs.T
        all_text = " ".join(contexts)
        lowered = all_text.lower()
        context_numbers, context_names = _numbers(all_text), _names(all_text) | {w.lower() for w in all_text.split()}
        out = []
        for ci, claim in enumerate(claims):
            top = [units[j][1] for j in np.argsort(-sims[ci])[: self._top_k]]
            j = int(sims[ci].argmax())
            ctx_i, support = units[j]
            sim = float(sims[ci, j])
            contrast = float(flip_sims[ci].max()) - sim
            reason = None
            claim_dir, top_dirs = direction(claim), {direction(t) for t in top}
            top_numbers = set().union(*(_numbers(t) for t in top))
            missing_numbers = _numbers(claim) - top_numbers - (context_numbers if sim > 0.9 else set())
            if missing_numbers:
                reason = f"number(s) not in the source: {', '.join(sorted(missing_numbers))}"
            elif missing := {n for n in _names(claim) - context_names if n not in lowered}:
                reason = f"name(s) not in the sources: {', '.join(sorted(missing))}"
            elif _NEGATION.search(claim) and not any(_NEGATION.search(t) for t in top):
                reason = "negation differs from the source"
            elif claim_dir and -claim_dir in top_dirs and claim_dir not in top_dirs:
                reason = "direction differs from the source (up vs down)"
            elif sim < self._threshold:
                reason = f"no source sentence says this (best similarity {sim:.2f})"
            out.append(ClaimVerdict(claim, reason is None, support, ctx_i, sim, reason, contrast))
        return out

    def aggregate(self, verdicts: list[ClaimVerdict]) -> float | None:
        if not verdicts:
            return None
        per_claim = [
            (1.0 if v.supported else 0.0) + 0.1 * v.similarity - self._contrast_weight * v.contrast for v in verdicts
        ]
        return sum(per_claim) / (1.1 * len(verdicts))

    def score(self, answer: str, contexts: Sequence[str]) -> float | None:
        """Share of claims supported, with a continuous tie-break by similarity and contrast; None if no claim."""
        return self.aggregate(self.verdicts(answer, contexts))

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float | None]:
        return [self.aggregate(v) for v in self.verdicts_many(items)]
