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
from kernel.protocols import Embedder, PassageChecker, SentenceVectors
from kernel.text import answer_sentences, strip_citation_markers, text_sha256
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


@dataclass(frozen=True)
class Tuning:
    max_sentences: int = 3
    lexical_weight: float = 0.3
    follow_ratio: float = 0.85
    max_embedded: int = 24  # sentences scored per answer, those sharing most words with the question


class ExtractiveGenerator:
    def __init__(
        self,
        embedder: Embedder,
        tuning: Tuning | None = None,
        checker: PassageChecker | None = None,
        sentence_vectors: SentenceVectors | None = None,
    ) -> None:
        self._embedder = embedder
        # Sentence vectors ingestion stored; None (or a sentence without one) encodes the sentence here.
        self._stored = sentence_vectors
        self._checker = checker
        t = tuning or Tuning()
        self._max_embedded = t.max_embedded
        self._max = t.max_sentences
        self._lexical = t.lexical_weight
        self._follow = t.follow_ratio

    @property
    def name(self) -> str:
        return "extractive"

    def rank(
        self, question: str, contexts: Sequence[Context], known: dict[str, list[float]] | None = None
    ) -> list[Candidate]:
        """Blocking: every sentence of the contexts, best first. `known`: vectors by digest of the framed sentence,
        used instead of encoding those sentences."""
        pieces, framed = [], []
        for c in contexts:
            for s, frame in answer_sentences(c.text, c.section):
                # A sentence that is itself an instruction to the model is never an answer. Only flagged chunks
                # can hold one: the flag is the same detector over the whole chunk.
                if not (c.flags and is_instruction(s)):
                    pieces.append((c, s))
                    framed.append(frame)
        if not pieces:
            return []
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
        cosines = self._cosines(question, framed, known or {})
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

    def _cosines(self, question: str, framed: list[str], known: dict[str, list[float]]) -> np.ndarray:
        digests = [text_sha256(f) for f in framed]
        missing = [f for f, d in zip(framed, digests, strict=True) if d not in known]
        # The question and what is not stored, in one call (with nothing stored, the call it always was).
        encoded = self._embedder.embed_documents([question, *missing])
        fresh = iter(encoded[1:])
        vectors = np.asarray([known[d] if d in known else next(fresh) for d in digests])
        return vectors @ np.asarray(encoded[0])

    async def _known(self, contexts: Sequence[Context]) -> dict[str, list[float]]:
        if self._stored is None or self._checker is not None:
            return {}
        digests = [text_sha256(frame) for c in contexts for _, frame in answer_sentences(c.text, c.section)]
        return await self._stored.get(self._embedder.model_id, digests) if digests else {}

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
        ranked = await asyncio.to_thread(self.rank, question, contexts, await self._known(contexts))
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
