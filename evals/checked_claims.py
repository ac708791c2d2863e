"""Claim verdicts from the support checker: each claim of an answer, read as a reply to the question, against the
source windows most likely to hold it.

- Claims are the answer's sentences of 3 or more words; an answer with none (a bare entity: "1881", "Paris") is
  one claim, judged with its question.
- Each claim is read by the checker against the `windows_per_claim` windows (up to 3 consecutive sentences of one
  context) that share most words with it and its question; its probability is the best of those, the window that
  gave it is the recorded support.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

from evals.checker import SupportChecker
from evals.checker_text import checker_text, passage_windows
from evals.claims import ClaimItem, ClaimVerdict
from kernel.text import split_sentences, strip_citation_markers

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the of to in on at for from by with and or but is are was were be been being do does did what which who "
    "whom whose when where why how that this these those it its as into than there their they he she his her i you "
    "we not no can could should would will may might must has have had about".split()
)


def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP)


def answer_claims(answer: str) -> list[str]:
    text = strip_citation_markers(answer).strip()
    claims = [s for s in split_sentences(text) if len(s.split()) >= 3]
    if not claims and _words(text):
        return [text]
    return claims


class CheckedClaims:
    """Blocking (runs the checker); callers run it in a thread."""

    method = "checker"

    def __init__(
        self, checker: SupportChecker, threshold: float = 0.5, windows_per_claim: int = 4, cache_size: int = 20_000
    ) -> None:
        self._checker = checker
        self._threshold = threshold
        self._k = windows_per_claim
        # Contexts come back again and again (the same chunks answer many questions): their windows are kept.
        self._windows: OrderedDict[str, list[tuple[str, frozenset[str]]]] = OrderedDict()
        self._cache_size = cache_size

    @property
    def version(self) -> str:
        return f"checker-{self._checker.version}-t{self._threshold:g}"

    def _windows_of(self, context: str) -> list[tuple[str, frozenset[str]]]:
        if (hit := self._windows.get(context)) is not None:
            self._windows.move_to_end(context)
            return hit
        wins = [(w, _words(w)) for *_, w in passage_windows(context)]
        self._windows[context] = wins
        while len(self._windows) > self._cache_size:
            self._windows.popitem(last=False)
        return wins

    def _candidates(self, query: str, focus: str, contexts: Sequence[str]) -> list[tuple[int, str]]:
        """The k windows sharing most words with `focus` (counted twice) and `query`; ties: earlier context."""
        q, f = _words(query), _words(focus)
        scored = [
            (2 * len(f & ws) + len(q & ws), -ci, -wi, ci, w)
            for ci, ctx in enumerate(contexts)
            for wi, (w, ws) in enumerate(self._windows_of(ctx))
        ]
        scored.sort(reverse=True)
        return [(ci, w) for *_, ci, w in scored[: self._k]]

    def judge_many(self, items: Sequence[ClaimItem]) -> list[list[ClaimVerdict]]:
        """One checker call for every (claim, window) pair of the batch."""
        plan: list[list[tuple[str, list[tuple[int, str]]]]] = []
        pairs: list[tuple[str, str]] = []
        for item in items:
            claims = answer_claims(item.answer)
            per_item = []
            for claim in claims:
                cands = self._candidates(item.question or "", claim, item.contexts)
                pairs += [(checker_text(item.question, claim), w) for _, w in cands]
                per_item.append((claim, cands))
            plan.append(per_item)
        probs = iter(self._checker.predict(pairs).tolist())
        out = []
        for per_item in plan:
            verdicts = []
            for claim, cands in per_item:
                scored = [(next(probs), ci, w) for ci, w in cands]
                if not scored:
                    verdicts.append(ClaimVerdict(claim, False, None, None, 0.0, "no context", method="checker"))
                    continue
                p, ci, w = max(scored, key=lambda x: x[0])
                ok = p >= self._threshold
                reason = None if ok else f"no source window supports it (checker {p:.2f})"
                verdicts.append(ClaimVerdict(claim, ok, w, ci, p, reason, method="checker"))
            out.append(verdicts)
        return out


def ranking_score(verdicts: Sequence[ClaimVerdict]) -> float | None:
    """A continuous answer-level score (for AUROC and thresholds): the mean of the claims' probabilities, pulled
    towards the weakest claim (one unsupported addition is what matters)."""
    if not verdicts:
        return None
    probs = [v.similarity for v in verdicts]
    return 0.5 * sum(probs) / len(probs) + 0.5 * min(probs)
