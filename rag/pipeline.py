"""answer(): validate → retrieve → abstain if the evidence is weak → generate with a versioned prompt → keep only
valid citations → persist the answer with its lineage."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from kernel.access import Principal
from kernel.errors import InvalidInput
from kernel.records import NewAnswer
from kernel.text import CITATION_MARKER, marker_numbers
from kernel.types import Attempt, Context, GeneratedAnswer, Hit, PromptRef, Usage
from kernel.unmask import visible_text
from kernel.usage import ModelTokens
from rag.budgets import FALLBACK, Fallback, within_budget
from rag.citation_gate import CitationGate
from rag.generation.base import Generator, Routed
from rag.generation.extractive import enough_evidence
from rag.generation.gateway import fallback_reason
from rag.guarded import obeys_injection, planted_phrases, screen_hits
from rag.observability.stages import count_screened, observe_answer, observed_retrieval, trace_fields
from rag.prompts.registry import load_prompt
from rag.redaction import StreamRedactor, needs_redaction, redact_answer, snippet
from rag.services import Services
from rag.variants import assign, sticky_unit
from retrieval.search import SearchOptions

ABSTAIN_TEXT = "The documents don't say."
FLAGGED_SPARE = 5


class Citation(BaseModel):
    n: int
    chunk_id: str
    document_id: str
    version: int
    filename: str
    page: int | None
    section: str | None
    snippet: str
    score: float


class AnswerOut(BaseModel):
    answer_id: str
    answer: str
    citations: list[Citation]
    abstained: bool
    abstain_reason: str | None = None
    prompt: PromptRef
    generator: str
    model: str
    usage: Usage
    timings_ms: dict[str, float]
    removed_citations: int = Field(default=0, description="Markers that pointed to no retrieved chunk.")
    evidence: float | None = Field(default=None, description="Strength of the best evidence (abstention signal).")
    conversation_id: str | None = None
    standalone_question: str | None = None
    injection: str | None = Field(
        default=None, description="An injection attempt seen in the question, answered as data (policy plain_text)."
    )
    flagged_excluded: int = Field(default=0, description="Retrieved chunks left out: they address the model.")
    flagged_quoted: int = Field(default=0, description="Retrieved chunks that address the model, quoted as data.")
    cached: bool = Field(default=False, description="Served from the answer cache; `cached_from` is the original.")
    cached_from: str | None = None
    variant: str | None = Field(default=None, description="The collection's variant that answered (RAG_VARIANTS).")
    attempts: list[Attempt] = Field(
        default_factory=list, description="The model gateway's attempts, in order (RAG_GATEWAY); empty without it."
    )
    fallback: str | None = Field(
        default=None,
        description="Why a fallback answered: `budget` (an LLM answer was over `fallback_budget`; answered "
        "extractively instead) or `gateway` (an endpoint before it failed, timed out or was skipped by its breaker; "
        'the last attempt names who answered, "extractive" when no endpoint did).',
    )
    fallback_budget: str | None = None


@dataclass
class Question:
    text: str
    collections: list[str]
    filters: dict[str, Any] | None = None
    top_k: int | None = None
    generator: str | None = None
    conversation_id: str | None = None
    standalone: str | None = None
    caller: Principal = field(default_factory=Principal.open_mode)
    # The label of an injection attempt the API let through (policy plain_text): the prompt fences the question.
    injection: str | None = None
    rewrite: ModelTokens | None = None  # what an LLM spent rewriting the chat follow-up into `standalone`


def pick_generator(svc: Services, name: str | None) -> Generator:
    if name is None:
        return svc.generators.get("llm") or svc.generators["extractive"]
    if name not in svc.generators:
        hint = "" if "llm" in svc.generators else " (set RAG_LLM__BASE_URL or RAG_GATEWAY__ENDPOINTS for 'llm')"
        raise InvalidInput(f"unknown generator {name!r}; available: {', '.join(sorted(svc.generators))}{hint}")
    return svc.generators[name]


def routed(gen: Generator, collections: list[str], question: str) -> Generator:
    """The generator for this question: the gateway's route for its collections and length, else `gen` itself."""
    return gen.route(collections, question) if isinstance(gen, Routed) else gen


def to_contexts(hits: list[Hit]) -> list[Context]:
    return [
        Context(
            n=i,
            chunk_id=h.chunk_id,
            document_id=h.payload["document_id"],
            version=h.payload["version"],
            filename=h.payload["filename"],
            page=h.payload.get("page"),
            section=h.payload.get("section"),
            text=h.payload["text"],
            score=h.score,
            flags=list(h.payload.get("flags") or []),
        )
        for i, h in enumerate(hits, start=1)
    ]


def validate_citations(text: str, contexts: list[Context]) -> tuple[str, list[int], int]:
    """Drop markers that point to no context; return the cleaned text, the cited numbers in order, the count dropped."""
    valid = {c.n for c in contexts}
    cited: list[int] = []
    removed = 0

    def keep(match: re.Match[str]) -> str:
        nonlocal removed
        nums = marker_numbers(match.group(1))
        good = [n for n in nums if n in valid]
        removed += len(nums) - len(good)
        cited.extend(n for n in good if n not in cited)
        return "".join(f"[{n}]" for n in good)

    cleaned = CITATION_MARKER.sub(keep, text)
    return re.sub(r"\s+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip(), cited, removed


@dataclass
class Draft:
    """Everything known about an answer before the generator runs."""

    q: Question
    gen: Generator
    prompt: Any
    hits: list[Hit]
    contexts: list[Context]
    timings: dict[str, float]
    started: float
    redact: bool = False  # the collections' pii policy: redact what is sent (rag/redaction.py)
    # Fenced: an injection attempt in the question, or flagged chunks quoted. An LLM answer is then checked whole
    # for the words the planted instructions asked for (`planted`) before any of it is shown.
    guarded: bool = False
    planted: set[str] = field(default_factory=set)
    excluded: int = 0
    quoted: int = 0
    variant: str | None = None  # control or the candidate's name; None outside an experiment
    replay_of: str | None = None
    fallback: Fallback | None = None  # over budget: answered by the extractive generator (rag/budgets.py)


def _abstain_reason(svc: Services, draft: Draft, answer: GeneratedAnswer | None) -> str | None:
    cfg = svc.settings.answer
    if not draft.hits:
        return "no_results"
    # An extractive answer (also the gateway's last resort, which carries its evidence) abstains on its evidence.
    if draft.gen.name == "extractive" or (answer is not None and answer.evidence_method is not None):
        if answer is None or not enough_evidence(answer, cfg.min_evidence, cfg.min_answerable):
            return "weak_evidence"
        return None
    best = max((h.dense_score for h in draft.hits if h.dense_score is not None), default=None)
    if best is None or best < cfg.min_retrieval_score:
        return "weak_evidence"
    if answer is not None and answer.text.strip().rstrip(".").lower() in {ABSTAIN_TEXT.rstrip(".").lower(), ""}:
        return "generator_declined"
    if answer is not None and draft.guarded and obeys_injection(answer.text, draft.planted):
        return "injection_followed"
    return None


async def _prepare(svc: Services, q: Question) -> Draft:
    cfg = svc.settings.answer
    started = time.perf_counter()
    if not visible_text(q.text):
        raise InvalidInput("the question is empty")
    if len(q.text) > cfg.max_question_chars:
        raise InvalidInput(f"the question has {len(q.text)} characters; the limit is {cfg.max_question_chars}")
    variant = assign(svc.settings.variants, q.collections, sticky_unit(q.conversation_id, q.caller.key_id, q.text))
    gen = routed(pick_generator(svc, q.generator or variant.generator), q.collections, q.standalone or q.text)
    fallback = None
    if q.caller.sees_all(q.collections):  # otherwise retrieval answers 404, naming no budget
        gen, fallback = await within_budget(svc, gen, q.caller.key_id, q.collections)
    top_k = q.top_k or cfg.context_k
    # A few more than needed: chunks flagged as addressing the model may be left out.
    fetch = min(top_k + FLAGGED_SPARE, max(top_k, svc.settings.retrieval.max_top_k))
    options = SearchOptions(filters=q.filters, top_k=fetch, grants=q.caller.grants())
    retrieval = await observed_retrieval(svc, svc.retriever.retrieve(q.standalone or q.text, q.collections, options))
    screened = await screen_hits(retrieval.hits, svc.catalog.collections, top_k)
    count_screened(svc, screened)
    guarded = q.injection is not None or screened.quoted > 0
    name = cfg.guarded_prompt if guarded else variant.prompt or cfg.prompt
    prompt = await asyncio.to_thread(load_prompt, name, extra=svc.settings.prompts.directory)
    contexts = to_contexts(screened.hits)
    redact = await needs_redaction(svc.catalog.collections, q.collections)
    draft = Draft(q, gen, prompt, screened.hits, contexts, dict(retrieval.timings_ms), started, redact, guarded)
    draft.excluded, draft.quoted, draft.variant = screened.excluded, screened.quoted, variant.name
    draft.fallback = fallback
    if guarded and gen.name != "extractive":
        untrusted = [c.text for c in contexts if c.flags] + ([q.standalone or q.text] if q.injection else [])
        trusted = [c.text for c in contexts if not c.flags]
        draft.planted = await asyncio.to_thread(planted_phrases, untrusted, trusted)
    return draft


async def _finish(svc: Services, draft: Draft, answer: GeneratedAnswer | None) -> AnswerOut:
    q, gen, prompt, timings = draft.q, draft.gen, draft.prompt, draft.timings
    hits, contexts = draft.hits, draft.contexts
    reason = _abstain_reason(svc, draft, answer)
    if reason == "injection_followed":
        svc.guard.answers_withheld += 1
    cited: list[int] = []
    text, removed = ABSTAIN_TEXT, 0
    if reason is None and answer is not None:
        text, cited, removed = validate_citations(answer.text, contexts)
        if not cited and gen.name != "extractive":
            reason = "no_citations"
            text = ABSTAIN_TEXT
    by_n = {c.n: c for c in contexts}
    citations = [
        Citation(
            n=n,
            chunk_id=c.chunk_id,
            document_id=c.document_id,
            version=c.version,
            filename=c.filename,
            page=c.page,
            section=c.section,
            snippet=snippet(c.text),
            score=c.score,
        )
        for n in ([] if reason else cited)
        if (c := by_n[n])
    ]
    observe_answer(svc, gen.name, timings, answer, reason)
    timings["total"] = round((time.perf_counter() - draft.started) * 1000, 2)
    usage = answer.usage if answer else Usage()
    evidence = answer.evidence if answer else None
    if evidence is None and gen.name != "extractive":
        evidence = max((h.dense_score for h in hits if h.dense_score is not None), default=None)
    model = answer.model if answer else gen.name
    attempts = answer.attempts if answer else []
    record = NewAnswer(
        key_id=q.caller.key_id,
        conversation_id=q.conversation_id,
        question=q.text,
        standalone_question=q.standalone or q.text,
        collections=q.collections,
        filters=q.filters,
        answer=text,
        abstained=reason is not None,
        abstain_reason=reason,
        citations=[c.model_dump() for c in citations],
        contexts=[
            {
                "n": c.n,
                "chunk_id": c.chunk_id,
                "document_id": c.document_id,
                "version": c.version,
                "filename": c.filename,
                "page": c.page,
                "section": c.section,  # with flags: what a replay needs to rebuild the context exactly
                "flags": c.flags,
                "text": c.text,
                "scores": h.model_dump(exclude={"payload"}),
            }
            for c, h in zip(contexts, hits, strict=True)
        ],
        prompt_id=prompt.id,
        prompt_version=prompt.version,
        generator=gen.name,
        model=model,
        usage=usage.model_dump(),
        timings_ms=timings,
        removed_citations=removed,
        evidence=evidence,
        **trace_fields(),
        variant=draft.variant,
        replay_of=draft.replay_of,
        fallback=draft.fallback.stored if draft.fallback else fallback_reason(attempts),
        attempts=[a.model_dump() for a in attempts] or None,
        rewrite=draft.q.rewrite,
    )
    answer_id = await save_answer(svc, record)
    return AnswerOut(
        answer_id=answer_id,
        answer=text,
        citations=citations,
        abstained=reason is not None,
        abstain_reason=reason,
        prompt=PromptRef(id=prompt.id, version=prompt.version),
        generator=gen.name,
        model=model,
        usage=usage,
        timings_ms=timings,
        removed_citations=removed,
        evidence=evidence,
        conversation_id=q.conversation_id,
        standalone_question=q.standalone,
        injection=q.injection,
        flagged_excluded=draft.excluded,
        flagged_quoted=draft.quoted,
        variant=draft.variant,
        attempts=attempts,
        fallback=FALLBACK if draft.fallback else fallback_reason(attempts),
        fallback_budget=draft.fallback.budget if draft.fallback else None,
    )


def _should_generate(svc: Services, draft: Draft) -> bool:
    # The extractive generator's own evidence score decides; an LLM is not called on weak retrieval.
    return bool(draft.hits) and (draft.gen.name == "extractive" or _abstain_reason(svc, draft, None) is None)


async def _generate(draft: Draft) -> GeneratedAnswer | None:
    if not draft.hits:
        return None
    t = time.perf_counter()
    out = await draft.gen.generate(draft.q.standalone or draft.q.text, draft.contexts, draft.prompt)
    draft.timings["generate"] = round((time.perf_counter() - t) * 1000, 2)
    return out


async def answer(svc: Services, q: Question) -> AnswerOut:
    draft = await _prepare(svc, q)
    generated = await _generate(draft) if _should_generate(svc, draft) else None
    draft.timings.setdefault("generate", 0.0)
    return await _sent(svc, draft, await _finish(svc, draft, generated))


async def _sent(svc: Services, draft: Draft, out: AnswerOut) -> AnswerOut:
    """The answer as it leaves the service: stored as generated (the scorer judges the real text), sent redacted
    when the collections' policy says so."""
    return await redact_answer(svc.redactor, out, draft.contexts) if draft.redact else out


async def answer_stream(svc: Services, q: Question) -> AsyncIterator[str | AnswerOut]:
    """Text deltas, then the final AnswerOut (with validated citations and the answer id)."""
    draft = await _prepare(svc, q)
    if draft.gen.name == "extractive" or draft.guarded:
        # Nothing to gain from streaming a ranking: decide (and maybe abstain) first, then send the words. A guarded
        # LLM answer is checked whole for an obeyed instruction before any word of it is shown.
        generated = await _generate(draft) if _should_generate(svc, draft) else None
        draft.timings.setdefault("generate", 0.0)
        final = await _sent(svc, draft, await _finish(svc, draft, generated))
        for word in re.findall(r"\S+\s*", final.answer):
            yield word
        yield final
        return
    generated = None
    gate = CitationGate(draft.contexts)
    # Redacting: each sentence is held until it is complete, then sent redacted (see StreamRedactor).
    hold = StreamRedactor(svc.redactor) if draft.redact else None
    t = time.perf_counter()
    if _should_generate(svc, draft):
        async for item in draft.gen.stream(q.standalone or q.text, draft.contexts, draft.prompt):
            if isinstance(item, GeneratedAnswer):
                generated = item
            elif (shown := gate.feed(item)) and (shown := await hold.feed(shown) if hold else shown):
                yield shown
    draft.timings["generate"] = round((time.perf_counter() - t) * 1000, 2)
    final = await _sent(svc, draft, await _finish(svc, draft, generated))
    rest = gate.finish()
    if hold:
        rest = await hold.feed(rest) + await hold.finish()
    if final.abstained:
        # Nothing was shown: an answer that shows a valid citation is never turned into an abstention.
        yield final.answer
    elif rest:
        yield rest
    yield final


async def save_answer(svc: Services, record: NewAnswer) -> str:
    """Store an answer and, when scoring is on, owe it its scores (evaluation runs and reports wait for them)."""
    answer_id = await svc.answers.save(record, score=svc.settings.scoring.enabled)
    if svc.settings.scoring.enabled:
        await svc.scoring.enqueue(answer_id)
    return answer_id
