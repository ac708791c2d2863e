"""Replaying an answer: the stored question again, with the same prompt, generator, filters and collections, and
both answers side by side with what changed.

Evidence: while every document version the original rested on is still kept (active, or retired and kept for
rollback), the replay answers from exactly the original contexts, so that only the prompt, the generator and the
code can make a difference. When one of them is gone (purged, or its document deleted: its text must not come
back), or when the analyst asks for `versions="current"` (to check a fixed document), the question is retrieved
again against the current versions, and the response says so.

The replay is stored as an answer of its own (`replay_of` set: reports leave it out) and scored at once, with the
original's reference answer if it has one, by the service's scorer.

Answers record each context's section title and flags since replays exist; an older answer is replayed without
them (the extractive generator reads the section title, so its replay may pick other sentences).
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import time
from typing import Any, Literal

from evals.online import score_input, score_result, with_chunk_ids
from evals.scores import METRICS
from kernel.access import Principal
from kernel.errors import Conflict, InvalidInput, NotFound
from kernel.records import StoredAnswer
from kernel.types import Hit, VersionStatus
from rag.budgets import within_budget
from rag.pipeline import Draft, Question, _finish, _generate, _prepare, _should_generate, routed, to_contexts
from rag.prompts.registry import load_prompt
from rag.services import Services

Versions = Literal["original", "current"]
KEPT = (VersionStatus.active.value, VersionStatus.retired.value)


def _generator_key(svc: Services, stored_name: str) -> str:
    for key, gen in svc.generators.items():
        if gen.name == stored_name:
            return key
    raise Conflict(
        f"the answer was made by the generator {stored_name!r}, which this configuration does not have "
        f"(it has {', '.join(sorted(g.name for g in svc.generators.values()))}); configure it (RAG_LLM__...) to replay"
    )


async def _documents(svc: Services, contexts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each document version the original rested on, with whether it is still kept."""
    out = []
    for document_id, version in dict.fromkeys((c["document_id"], c["version"]) for c in contexts):
        try:
            doc = await svc.catalog.documents.get(document_id)
        except NotFound:
            out.append({"document_id": document_id, "version": version, "status": "deleted", "kept": False})
            continue
        status = next((str(v.status) for v in doc.versions if v.version == version), "purged")
        out.append(
            {
                "document_id": document_id,
                "version": version,
                "status": status,
                "kept": status in KEPT,
                "active_version": doc.active_version,
            }
        )
    return out


def _original_hits(contexts: list[dict[str, Any]]) -> list[Hit]:
    return [
        Hit(
            **{k: v for k, v in (c.get("scores") or {}).items() if k in Hit.model_fields and k != "payload"},
            payload={k: c.get(k) for k in ("document_id", "version", "filename", "page", "section", "flags", "text")},
        )
        for c in contexts
    ]


async def _draft(svc: Services, original: StoredAnswer, caller: Principal, use_original: bool) -> Draft:
    question = Question(
        text=original.question,
        collections=original.collections,
        filters=original.filters,
        top_k=len(original.contexts) or None,
        generator=_generator_key(svc, original.generator),
        standalone=original.standalone_question if original.standalone_question != original.question else None,
        caller=caller,
    )
    try:
        prompt = await asyncio.to_thread(load_prompt, original.prompt_id, extra=svc.settings.prompts.directory)
    except InvalidInput as exc:
        raise Conflict(f"the answer's prompt {original.prompt_id!r} no longer exists: {exc.message}") from None
    if use_original:
        hits = _original_hits(original.contexts)
        gen = routed(
            svc.generators[question.generator or "extractive"], question.collections, original.standalone_question
        )
        # A replay spends tokens like any answer: the analyst's key and the collections' budgets hold.
        gen, fallback = await within_budget(svc, gen, caller.key_id, question.collections)
        guarded = original.prompt_id == svc.settings.answer.guarded_prompt
        draft = Draft(question, gen, prompt, hits, to_contexts(hits), {}, time.perf_counter(), guarded=guarded)
        draft.fallback = fallback
    else:
        draft = await _prepare(svc, question)
        draft.prompt = prompt  # the original's prompt, whichever the configuration would pick now
    draft.variant, draft.replay_of = original.variant, original.id
    return draft


async def _score_now(svc: Services, answer_id: str, reference: str | None) -> None:
    """Scored in the request: the analyst is waiting for the comparison (the worker finds it done)."""
    if not svc.settings.scoring.enabled:
        return
    if reference:
        await svc.answers.scores.request(answer_id, reference, set_reference=True)
    stored = await svc.answers.get(answer_id)
    state = await svc.answers.scores.state(answer_id)
    if state is None:
        return
    result = await svc.scorer.score(score_input(stored, reference))
    await svc.answers.scores.save(answer_id, score_result(with_chunk_ids(result, stored.contexts)), state.requests)


async def side(svc: Services, answer: StoredAnswer) -> dict[str, Any]:
    """An answer as GET /v1/answers/{id} shows it (without feedback), for one side of the comparison."""
    data = dataclasses.asdict(answer)
    state = await svc.answers.scores.state(answer.id)
    data["scores"] = {"status": "not_scored"} if state is None else {"status": state.status, **(state.result or {})}
    if state is not None:
        data["scores"]["reference"] = state.reference
    return data


def _key(item: dict[str, Any]) -> tuple[str, int, str]:
    return (item["document_id"], item["version"], item["chunk_id"])


def _brief(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in ("n", "document_id", "version", "chunk_id", "filename")}


def _set_change(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    old, new = {_key(c): c for c in before}, {_key(c): c for c in after}
    return {
        "same": list(old) == list(new),
        "added": [_brief(c) for k, c in new.items() if k not in old],
        "removed": [_brief(c) for k, c in old.items() if k not in new],
        "kept": sum(k in old for k in new),
    }


def _metric(data: dict[str, Any], metric: str) -> float | None:
    value = (data["scores"].get(metric) or {}).get("value")
    return float(value) if isinstance(value, int | float) else None


def changes(original: dict[str, Any], replay: dict[str, Any]) -> dict[str, Any]:
    """What differs between the two answers: text, abstention, contexts, citations, scores (no text is quoted)."""
    versions = {c["document_id"]: c["version"] for c in original["contexts"]}
    scores = {}
    for m in METRICS:
        a, b = _metric(original, m), _metric(replay, m)
        scores[m] = {"original": a, "replay": b, "diff": None if a is None or b is None else round(b - a, 4)}
    return {
        "text_changed": original["answer"] != replay["answer"],
        "text_similarity": round(difflib.SequenceMatcher(None, original["answer"], replay["answer"]).ratio(), 4),
        "abstained": {"original": original["abstained"], "replay": replay["abstained"]},
        "contexts": _set_change(original["contexts"], replay["contexts"]),
        "citations": _set_change(original["citations"], replay["citations"]),
        "document_versions": [
            {"document_id": d, "original": versions[d], "replay": c["version"]}
            for d, c in {c["document_id"]: c for c in replay["contexts"]}.items()
            if d in versions and versions[d] != c["version"]
        ],
        "scores": scores,
    }


async def replay(svc: Services, caller: Principal, original: StoredAnswer, versions: Versions) -> dict[str, Any]:
    documents = await _documents(svc, original.contexts)
    gone = [d for d in documents if not d["kept"]]
    use_original = versions == "original" and bool(original.contexts) and not gone
    if use_original:
        note = "answered from the original contexts: every document version they came from is still kept"
    elif versions == "current":
        note = "retrieved again against the current document versions, as asked"
    elif not original.contexts:
        note = "the original retrieved nothing; retrieved again against the current document versions"
    else:
        which = ", ".join(f"{d['document_id']} version {d['version']} ({d['status']})" for d in gone)
        note = f"retrieved again against the current document versions: no longer kept: {which}"
    draft = await _draft(svc, original, caller, use_original)
    generated = await _generate(draft) if _should_generate(svc, draft) else None
    draft.timings.setdefault("generate", 0.0)
    out = await _finish(svc, draft, generated)
    state = await svc.answers.scores.state(original.id)
    await _score_now(svc, out.answer_id, state.reference if state else None)
    before, after = await side(svc, original), await side(svc, await svc.answers.get(out.answer_id))
    return {
        "evidence": "original_versions" if use_original else "current_versions",
        "evidence_note": note,
        "documents": documents,
        "prompt": {
            "id": original.prompt_id,
            "original_version": original.prompt_version,
            "version": draft.prompt.version,
            "same": draft.prompt.version == original.prompt_version,
        },
        "generator": original.generator,
        "changes": changes(before, after),
        "original": before,
        "replay": after,
    }
