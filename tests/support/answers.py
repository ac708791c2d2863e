"""A minimal saved answer for store and report tests."""

from __future__ import annotations

from kernel.records import NewAnswer


def new_answer(question: str, generator: str = "extractive", collections: tuple[str, ...] = ("c",)) -> NewAnswer:
    return NewAnswer(
        question=question,
        standalone_question=question,
        collections=list(collections),
        filters=None,
        answer="An answer.",
        abstained=False,
        abstain_reason=None,
        citations=[],
        contexts=[],
        prompt_id="grounded_answer",
        prompt_version="abc",
        generator=generator,
        model="m",
        usage={},
        timings_ms={},
    )
