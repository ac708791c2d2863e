"""Offline faithfulness: split an answer into claims, find each claim's best support in the contexts with the
local embedding model, then check what similarity alone misses (numbers, named entities, negation).

Groundwork for the groundedness issue: `OfflineFaithfulness.score()` is the claim-level core the offline Scorer
will build on; `evals/validate.py` measures it against labelled pairs.
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ingestion.chunk import split_sentences
from rag.protocols import Embedder

_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATION = re.compile(r"\b(not|no|never|none|neither|nor|cannot|without|n't|fails?|lack(?:s|ed)?)\b", re.I)
_PROPER = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]+\b")


@dataclass
class ClaimVerdict:
    claim: str
    supported: bool
    support: str | None
    context_index: int | None
    similarity: float
    reason: str | None


def claims_of(answer: str) -> list[str]:
    text = _MARKER.sub("", answer)
    return [s for s in split_sentences(text) if len(s.split()) >= 3]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _names(text: str) -> set[str]:
    return {m.group(0).lower() for m in _PROPER.finditer(text)}


class OfflineFaithfulness:
    def __init__(self, embedder: Embedder, threshold: float = 0.6, cache_size: int = 50_000) -> None:
        self._embedder = embedder
        self._threshold = threshold
        # The same chunks are cited again and again: their sentence vectors are worth keeping.
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def _unit_vectors(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vec in zip(missing, self._embedder.embed_documents(missing), strict=True):
                self._cache[text] = np.asarray(vec, dtype=np.float32)
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return np.stack([self._cache[t] for t in texts])

    def verdicts(self, answer: str, contexts: Sequence[str]) -> list[ClaimVerdict]:
        """Blocking (encodes with the model)."""
        claims = claims_of(answer)
        units: list[tuple[int, str]] = []
        for i, ctx in enumerate(contexts):
            sentences = split_sentences(ctx)
            units.extend((i, s) for s in sentences)
            # Pairs of sentences: a claim often fuses two adjacent ones.
            units.extend((i, f"{a} {b}") for a, b in itertools.pairwise(sentences))
        if not claims or not units:
            return [ClaimVerdict(c, False, None, None, 0.0, "no context") for c in claims]
        claim_vecs = np.asarray(self._embedder.embed_documents(claims))
        unit_vecs = self._unit_vectors([u for _, u in units])
        sims = claim_vecs @ unit_vecs.T
        all_text = " ".join(contexts)
        context_numbers, context_names = _numbers(all_text), _names(all_text) | {w.lower() for w in all_text.split()}
        out = []
        for ci, claim in enumerate(claims):
            j = int(sims[ci].argmax())
            ctx_i, support = units[j]
            sim = float(sims[ci, j])
            reason = None
            missing_numbers = _numbers(claim) - _numbers(support) - (context_numbers if sim > 0.9 else set())
            if missing_numbers:
                reason = f"number(s) not in the source: {', '.join(sorted(missing_numbers))}"
            elif missing := _names(claim) - context_names:
                reason = f"name(s) not in the sources: {', '.join(sorted(missing))}"
            elif bool(_NEGATION.search(claim)) != bool(_NEGATION.search(support)):
                reason = "negation differs from the source"
            elif sim < self._threshold:
                reason = f"no source sentence says this (best similarity {sim:.2f})"
            out.append(ClaimVerdict(claim, reason is None, support, ctx_i, sim, reason))
        return out

    def score(self, answer: str, contexts: Sequence[str]) -> float | None:
        """Share of claims supported, with a continuous tie-break by similarity; None if there is no claim."""
        verdicts = self.verdicts(answer, contexts)
        if not verdicts:
            return None
        return sum((1.0 if v.supported else 0.0) + 0.1 * v.similarity for v in verdicts) / (1.1 * len(verdicts))
