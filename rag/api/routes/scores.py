"""Groundedness: an answer's scores, reference and feedback; scoring any answer; reports for analysts."""

from __future__ import annotations

import asyncio
import dataclasses
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from evals.reports import build_report, to_csv
from evals.scores import METRICS, ScoreInput, Scores
from evals.variants import compare_variants
from kernel.access import Permission, Principal
from kernel.errors import InvalidInput, NotFound
from kernel.records import ReportQuery, ScoreState, StoredAnswer
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.limits import RequestLimits
from rag.api.params import Id, ReportFilters, time_range
from rag.redaction import needs_redaction, redact_record, redact_report, redact_rows
from rag.security import Caller, Reviewer, allowed, page_viewer, visible
from rag.services import Services

router = APIRouter(tags=["groundedness"], route_class=CheckedRoute, responses=errors(*COMMON))
Svc = Annotated[Services, Depends(get_services)]


def _score_view(state: ScoreState | None) -> dict[str, Any]:
    if state is None:
        return {"status": "not_scored", "reference": None}
    view: dict[str, Any] = {
        "status": state.status,
        "reference": state.reference,
        "error": state.error,
        "scored_at": state.scored_at,
    }
    if state.result:
        view.update(state.result)
    return view


async def _answer(svc: Services, caller: Principal, answer_id: str) -> StoredAnswer:
    """The answer, if the caller may see it: a reviewer every answer of granted collections, an asker its own.
    Otherwise the same 404 as for an answer that does not exist."""
    answer = await svc.answers.get(answer_id)
    allowed = caller.may(Permission.review) or (caller.may(Permission.ask) and caller.owns(answer.key_id))
    if not allowed or not caller.sees_all(answer.collections):
        raise NotFound(f"answer {answer_id!r} does not exist")
    return answer


@router.get("/v1/answers/{answer_id}", responses=errors(404))
async def get_answer(answer_id: Id, svc: Svc, caller: Caller) -> dict[str, Any]:
    """The answer with its lineage, its scores with per-claim verdicts, and its feedback (redacted when a
    collection of the answer says so)."""
    answer = await _answer(svc, caller, answer_id)
    data = dataclasses.asdict(answer)
    data["scores"] = _score_view(await svc.answers.scores.state(answer_id))
    feedback = (await svc.answers.feedback_for([answer_id])).get(answer_id, [])
    data["feedback"] = [dataclasses.asdict(f) for f in feedback]
    if await needs_redaction(svc.catalog.collections, answer.collections):
        return await redact_record(svc.redactor, data)
    return data


class ReferenceIn(BaseModel):
    reference: str = Field(min_length=1, description="The correct answer, written by a person.")


def _check_length(what: str, text: str, svc: Services) -> None:
    limit = svc.settings.scoring.max_text_chars
    if len(text) > limit:
        raise InvalidInput(f"{what} has {len(text)} characters; the limit is {limit}")


@router.post("/v1/answers/{answer_id}/reference", status_code=202, responses=errors(403, 404))
async def attach_reference(answer_id: Id, body: ReferenceIn, svc: Svc, caller: Reviewer) -> dict[str, Any]:
    """Attach a reference answer (enables context recall) and rescore in the worker."""
    if not body.reference.strip():
        raise InvalidInput("reference is blank")
    _check_length("reference", body.reference, svc)
    await _answer(svc, caller, answer_id)
    await svc.scoring.request(answer_id, body.reference.strip(), set_reference=True)
    return {"answer_id": answer_id, "status": "pending"}


@router.post("/v1/answers/{answer_id}/rescore", status_code=202, responses=errors(403, 404))
async def rescore(answer_id: Id, svc: Svc, caller: Reviewer) -> dict[str, Any]:
    """Score again with the scorer configured now (e.g. after a judge LLM was configured)."""
    await _answer(svc, caller, answer_id)
    await svc.scoring.request(answer_id, set_reference=False)
    return {"answer_id": answer_id, "status": "pending", "scorer": svc.scorer.name}


class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=4000)


@router.post("/v1/answers/{answer_id}/feedback", status_code=201, responses=errors(404))
async def add_feedback(answer_id: Id, body: FeedbackIn, svc: Svc, caller: Caller) -> dict[str, Any]:
    await _answer(svc, caller, answer_id)
    return dataclasses.asdict(await svc.answers.add_feedback(answer_id, body.rating, body.comment, caller.key_id))


# ----- scoring any answer ----------------------------------------------------------------------------------------
class EvaluateItem(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "question": "How tall is the tower?",
                    "answer": "It is 330 metres tall.",
                    "contexts": ["The Eiffel Tower is 330 metres tall."],
                }
            ]
        }
    )

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    contexts: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    reference: str | None = None


class EvaluateBatch(BaseModel):
    items: list[EvaluateItem] = Field(min_length=1)


class EvaluateBatchOut(BaseModel):
    results: list[Scores]
    means: dict[str, float | None]


def _check_item(item: EvaluateItem, svc: Services, where: str) -> None:
    cfg = svc.settings.scoring
    if len(item.contexts) > cfg.max_contexts:
        raise InvalidInput(f"{where}contexts has {len(item.contexts)} entries; the limit is {cfg.max_contexts}")
    for name in ("question", "answer", "reference"):
        value = getattr(item, name)
        if value is not None:
            _check_length(f"{where}{name}", value, svc)
            if not value.strip():
                raise InvalidInput(f"{where}{name} is blank")
    for i, ctx in enumerate(item.contexts):
        _check_length(f"{where}contexts[{i}]", ctx, svc)
        if not ctx.strip():
            raise InvalidInput(f"{where}contexts[{i}] is blank: leave it out")


def _input(item: EvaluateItem) -> ScoreInput:
    return ScoreInput(question=item.question, answer=item.answer, contexts=item.contexts, reference=item.reference)


def _shape(body: Any) -> str:
    return "batch" if isinstance(body, dict) and "items" in body else "single"


# Chosen by shape, so that a bad single item is told what is wrong with it, not also that "items" is missing.
EvaluateBody = Annotated[
    Annotated[EvaluateItem, Tag("single")] | Annotated[EvaluateBatch, Tag("batch")], Discriminator(_shape)
]


@router.post("/v1/evaluate", response_model=Scores | EvaluateBatchOut, responses=errors(403))
async def evaluate(body: EvaluateBody, svc: Svc, _caller: Reviewer, request: Request) -> Scores | EvaluateBatchOut:
    """Score an answer produced anywhere, synchronously, with the configured scorer. `{"items": [...]}` for a batch.
    At most RAG_LIMITS__EVALUATE_CONCURRENCY run at once; a call over it gets 429."""
    limits: RequestLimits = request.app.state.limits
    if isinstance(body, EvaluateItem):
        _check_item(body, svc, "")
        async with limits.evaluation():
            return await svc.scorer.score(_input(body))
    limit = svc.settings.scoring.evaluate_max_items
    if len(body.items) > limit:
        raise InvalidInput(f"the batch has {len(body.items)} items; the limit is {limit} (split it)")
    for i, item in enumerate(body.items):
        _check_item(item, svc, f"items[{i}].")
    async with limits.evaluation():
        results = await svc.scorer.score_many([_input(item) for item in body.items])
    means = {}
    for m in METRICS:
        values = [v for r in results if (v := r.value(m)) is not None]
        means[m] = round(sum(values) / len(values), 4) if values else None
    return EvaluateBatchOut(results=results, means=means)


# ----- reports ---------------------------------------------------------------------------------------------------
class ReportParams(ReportFilters):
    """The report's query parameters."""

    worst: int = Field(default=20, ge=1, le=500)
    format: Literal["json", "csv"] = "json"


_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


@router.get("/v1/reports/groundedness", response_model=None, responses={**_CSV, **errors(403, 404)})
async def groundedness_report(
    svc: Svc, caller: Reviewer, params: Annotated[ReportParams, Query()]
) -> dict[str, Any] | Response:
    p = params
    start, end = time_range(p.since, p.until, inclusive_until=True)
    if p.collection is not None:
        await svc.catalog.collections.filterable_fields([visible(caller, p.collection)])  # 404 for an unknown one
    cfg = svc.settings.scoring
    query = ReportQuery(
        start, end, p.collection, p.prompt_version, p.generator, limit=cfg.report_max_answers, grants=caller.grants()
    )
    rows = await svc.answers.report_rows(query)
    truncated = len(rows) == cfg.report_max_answers
    feedback = await svc.answers.feedback_for([r.id for r in rows])
    if p.format == "csv":
        rows = await redact_rows(svc.catalog.collections, svc.redactor, rows)
        return Response(
            await asyncio.to_thread(to_csv, rows, feedback),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="groundedness.csv"'},
        )
    thresholds = {m: cfg.threshold(m) for m in METRICS}
    report = await asyncio.to_thread(build_report, rows, feedback, thresholds, p.worst)
    # Each variant of the collections' experiments side by side, with confidence intervals (RAG_VARIANTS).
    report["by_variant"] = await asyncio.to_thread(compare_variants, rows, feedback)
    # Built from the real rows (the figures do not change), then the texts it shows are redacted.
    report = await redact_report(svc.catalog.collections, svc.redactor, report)
    return {
        "filters": p.model_dump(include={"collection", "since", "until", "prompt_version", "generator"}),
        # Only the newest RAG_SCORING__REPORT_MAX_ANSWERS answers are read: narrow the dates to see older ones.
        "truncated": truncated,
        **report,
    }


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
async def reports_page(caller: Annotated[Principal | None, Depends(page_viewer)]) -> Response:
    if caller is None:
        return RedirectResponse("/login?next=/reports", status_code=303)
    allowed(caller, Permission.review)
    page = resources.files("rag.api").joinpath("static/reports.html").read_text(encoding="utf-8")
    return HTMLResponse(page)
