"""The embedded default generator: no LLM, the answer is made of the retrieved sentences that best answer the
question, each followed by its citation.

With the support checker, each candidate sentence is scored by the checker's probability that it answers the
question, and the best probability is the evidence the abstention threshold reads (`min_answerable`). Without
it, sentences are scored by meaning (cosine of the local embedding model) and by how many of the question's
content words they contain (`min_evidence`). Either way the best one leads, and up to two more follow when they
are nearly as good and say something else. Only the sentences sharing most words with the question are scored.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from kernel.injection import is_instruction
from kernel.protocols import Embedder, PassageChecker
from kernel.text import split_sentences, strip_citation_markers
from kernel.types import Context, GeneratedAnswer
from rag.generation.base import Prompt

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    (
        "a an the of to in on at for from by with and or but is are was were be been being do does did what which who "
        "whom whose when where why how that this these those it its as into than then there their they them he she his "
        "her i you we our your not no can could should would will shall may might must has have had about over under "
        "between during after before much many more most some any all each other such only own same so too very just"
    ).split()
)


MIN_WORDS, MAX_WORDS = 5, 120  # shorter "sentences" are headings and labels, not answers
NUMBER_BONUS = 0.1
_DIGIT = re.compile(r"\d")
_NUMERIC_QUESTION = re.compile(
    r"^\s*(when|what year|what date|how (many|much|tall|long|old|far|big|large|high|fast|often))\b", re.I
)


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def enough_evidence(answer: GeneratedAnswer, min_evidence: float, min_answerable: float) -> bool:
    """Whether an extractive answer may be shown: its best evidence reaches the threshold of its method
    (RAG_ANSWER__MIN_ANSWERABLE with the checker, RAG_ANSWER__MIN_EVIDENCE by similarity)."""
    if not answer.text:
        return False
    least = min_answerable if answer.evidence_method == "checker" else min_evidence
    return (answer.evidence or 0.0) >= least


@dataclass
class Candidate:
    n: int
    text: str
    score: float
    cosine: float
    overlap: float


class ExtractiveGenerator:
    def __init__(
        self,
        embedder: Embedder,
        max_sentences: int = 3,
        lexical_weight: float = 0.3,
        follow_ratio: float = 0.85,
        max_embedded: int = 24,
        checker: PassageChecker | None = None,
    ) -> None:
        self._embedder = embedder
        self._checker = checker
        self._max_embedded = max_embedded
        self._max = max_sentences
        self._lexical = lexical_weight
        self._follow = follow_ratio

    @property
    def name(self) -> str:
        return "extractive"

    def rank(self, question: str, contexts: Sequence[Context]) -> list[Candidate]:
        """Blocking: every sentence of the contexts, best first."""
        pieces = [
            (c, s)
            for c in contexts
            for s in split_sentences(c.text)
            # A sentence that is itself an instruction to the model is never an answer. Only flagged chunks can
            # hold one: the flag is the same detector over the whole chunk.
            if MIN_WORDS <= len(s.split()) <= MAX_WORDS and not (c.flags and is_instruction(s))
        ]
        if not pieces:
            return []
        # The section title resolves "it" and "they" in a sentence, for the embedding and the word overlap.
        framed = [f"{c.section}: {s}" if c.section and c.section not in s else s for c, s in pieces]
        q_words = content_words(question)
        if len(pieces) > self._max_embedded:
            # Encoding is the cost: only the sentences sharing most words with the question (ties: better-ranked
            # context first) are embedded.
            def lexical(i: int) -> tuple[float, int]:
                return (len(q_words & content_words(framed[i])), -pieces[i][0].n)

            keep = sorted(sorted(range(len(pieces)), key=lexical, reverse=True)[: self._max_embedded])
            pieces = [pieces[i] for i in keep]
            framed = [framed[i] for i in keep]
        if self._checker is not None:
            probs = self._checker.answers(question, framed)
            out = [
                Candidate(c.n, sentence, p, 0.0, len(q_words & content_words(frame)) / max(1, len(q_words)))
                for (c, sentence), frame, p in zip(pieces, framed, probs, strict=True)
            ]
            # Ties (rare with probabilities) go to the better-ranked context.
            out.sort(key=lambda cand: (cand.score, -cand.n), reverse=True)
            return out
        vectors = np.asarray(self._embedder.embed_documents([question, *framed]))
        cosines = vectors[1:] @ vectors[0]
        wants_number = bool(_NUMERIC_QUESTION.search(question))
        out = []
        for (c, sentence), frame, cos in zip(pieces, framed, cosines, strict=True):
            overlap = len(q_words & content_words(frame)) / len(q_words) if q_words else 0.0
            score = (1 - self._lexical) * float(cos) + self._lexical * overlap
            if wants_number and _DIGIT.search(sentence):
                score += NUMBER_BONUS
            out.append(Candidate(c.n, sentence, score, float(cos), overlap))
        out.sort(key=lambda cand: cand.score, reverse=True)
        return out

    def compose(self, ranked: Sequence[Candidate]) -> tuple[str, float]:
        if not ranked:
            return "", 0.0
        best = ranked[0]
        chosen = [best]
        for cand in ranked[1:]:
            if len(chosen) >= self._max or cand.score < self._follow * best.score:
                break
            words = content_words(cand.text)
            if any(len(words & content_words(c.text)) / max(1, len(words)) > 0.6 for c in chosen):
                continue  # says nothing new
            chosen.append(cand)
        parts = []
        for c in chosen:
            # The document's own reference markers would read as citations of our numbered sources.
            body = strip_citation_markers(c.text).rstrip()
            end = body[-1] if body[-1] in ".!?" else "."
            parts.append(f"{body.rstrip('.!?')} [{c.n}]{end}")
        return " ".join(parts), best.score

    async def generate(self, question: str, contexts: Sequence[Context], prompt: Prompt) -> GeneratedAnswer:
        ranked = await asyncio.to_thread(self.rank, question, contexts)
        text, evidence = self.compose(ranked)
        return GeneratedAnswer(
            text=text,
            model=f"extractive:{self._embedder.model_id}",
            evidence=evidence,
            evidence_method="checker" if self._checker is not None else "similarity",
        )

    async def stream(
        self, question: str, contexts: Sequence[Context], prompt: Prompt
    ) -> AsyncIterator[str | GeneratedAnswer]:
        answer = await self.generate(question, contexts, prompt)
        for word in re.findall(r"\S+\s*", answer.text):
            yield word
        yield answer
