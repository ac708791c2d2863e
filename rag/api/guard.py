"""Direct injection at the API edge: a question that tries to override the rules, reveal the prompt or other
collections, or switch the model into another persona is refused (422) or answered with the attempt fenced as
data, by the `injection` policy of the collections it asks. Every detection is counted and audited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Request

from kernel.access import Principal
from kernel.errors import InvalidInput
from kernel.injection import NOTHING, Detection, detect_injection
from rag.api.audit import note
from rag.security import visible
from rag.services import Services

log = logging.getLogger(__name__)


class InjectionRefused(InvalidInput):
    """422: the question looks like a prompt-injection attempt and a collection's policy refuses those."""

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = detail


def strongest(texts: Sequence[str]) -> Detection:
    found = [d for d in (detect_injection(t) for t in texts if t) if d.detected]
    return max(found, key=lambda d: d.score, default=NOTHING)


def _refusal(detection: Detection, refusing: list[str]) -> InjectionRefused:
    which = ", ".join(repr(n) for n in refusing)
    owners = "its owner" if len(refusing) == 1 else "their owners"
    message = (
        f"the question was refused: it looks like {detection.describe()}, and collection {which} refuses such "
        f"questions (policy injection=refuse). Ask about the content of the documents, without instructions for "
        f"the assistant; {owners} may set the policy to injection=plain_text to answer such questions with the "
        "text treated as data."
    )
    detail = {
        "guardrail": "prompt_injection",
        "kind": detection.kind,
        "disguises": detection.disguises,
        "signals": [s.name for s in detection.signals],
        "collections": refusing,
        "policy": "refuse",
    }
    return InjectionRefused(message, detail)


async def check_question(
    svc: Services, request: Request, caller: Principal, texts: Sequence[str], collections: Sequence[str]
) -> Detection:
    """The detection over `texts` (NOTHING when clean); raises InjectionRefused if a collection refuses it.

    A detection that is answered is fenced as data by the caller (`Question.fenced`)."""
    detection = strongest(texts)
    if not detection.detected:
        return detection
    stats = svc.guard
    stats.questions[detection.label] += 1
    note(request, detail=f"injection: {detection.label}")
    # The caller's grants first: a refusal must not tell a forbidden collection from one that does not exist.
    names = [visible(caller, c) for c in dict.fromkeys(collections)]
    policies = await svc.catalog.collections.policies(names)
    refusing = [n for n in names if policies[n].injection == "refuse"]
    log.warning(
        "prompt injection (%s, score %.1f) on %s: %s",
        detection.label,
        detection.score,
        ", ".join(names),
        "refused" if refusing else "answered as plain text",
    )
    if refusing:
        stats.refused += 1
        svc.telemetry.metrics.guardrail("injection", "question_refused")
        raise _refusal(detection, refusing)
    stats.answered_as_data += 1
    svc.telemetry.metrics.guardrail("injection", "question_answered_as_data")
    return detection


def note_search(svc: Services, request: Request, query: str) -> None:
    """A search query is matched, never read by a model: an attempt there is recorded, not refused."""
    detection = detect_injection(query)
    if detection.detected:
        svc.guard.searches += 1
        svc.telemetry.metrics.guardrail("injection", "search_flagged")
        note(request, detail=f"injection: {detection.label}")


def note_answer(request: Request, detection: Detection, excluded: int, quoted: int) -> None:
    """The audit detail of an answer: the question's detection and the flagged chunks it left out or quoted."""
    parts = [f"injection: {detection.label}"] if detection.detected else []
    if excluded or quoted:
        parts.append(f"flagged chunks: {excluded} excluded, {quoted} quoted")
    if parts:
        note(request, detail="; ".join(parts))
