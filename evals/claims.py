"""What claim judges exchange: an answer to judge (with its question and contexts) and one verdict per claim."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClaimItem:
    question: str | None
    answer: str
    contexts: Sequence[str]


@dataclass
class ClaimVerdict:
    claim: str
    supported: bool
    support: str | None
    context_index: int | None
    similarity: float
    reason: str | None
    # How much closer the best source is to the claim with its direction flipped than to the claim (> 0: leans
    # towards contradiction).
    contrast: float = 0.0
    # Which judge made it: "similarity" (`similarity` is a cosine) or "checker" (`similarity` holds its probability).
    method: str = "similarity"
