"""The answer cache: a repeated question is answered with the earlier answer while nothing it depends on changed.

`answer` and `answer_stream` wrap the pipeline's. The key is a digest of the normalised question, the collections,
filters and top_k, the caller's grants, the prompt (id and version) and the generator (name and model); so a key
with other grants never finds another's answer, and a new prompt version or generator answers afresh. Before an
earlier answer is served it must still hold:

- every document it rests on (each retrieved context) still has the version it read active, and
- no document of the collections it searched changed since it was answered (a new document or version might
  now be retrieved), and it is younger than RAG_CACHE__ANSWER_TTL_SECONDS.

The cache is the answers table itself (column `cache_key`): the original row already holds everything an answer
returns. A served copy is recorded as an answer of its own, owned by the caller and naming the original
(`cached_from`), with no tokens used: the audit log, the caller's history and conversations, feedback and
reports see every answer given, and a cached copy never serves as an original.

Not cached: questions over a collection in RAG_CACHE__ANSWER_OPT_OUT, injection attempts answered as data, and
answers made with the guarded prompt (flagged chunks quoted).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import unicodedata
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from kernel.cache_stats import ANSWERS
from kernel.records import NewAnswer, StoredAnswer
from kernel.types import Context, PromptRef, Usage
from rag import pipeline
from rag.observability.stages import trace_fields
from rag.pipeline import AnswerOut, Citation, Question, pick_generator, save_answer
from rag.prompts.registry import load_prompt
from rag.redaction import needs_redaction, redact_answer
from rag.services import Services
from rag.storage.answer_cache import AnswerCacheStore
from rag.storage.engine import now

_SPACE = re.compile(r"\s+")


def normalise(question: str) -> str:
    """Case, Unicode forms, spacing and the closing punctuation do not make another question."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", question)).strip().casefold()
    return text.rstrip("?!.。？！ ")


async def cache_key(svc: Services, q: Question) -> tuple[str, PromptRef] | None:
    """The key this question is cached under and the prompt it is answered with; None: not cached."""
    cfg = svc.settings.cache
    if not cfg.answers or q.injection is not None or set(q.collections) & set(cfg.answer_opt_out):
        return None
    if not q.caller.sees_all(q.collections):
        return None  # the pipeline answers that with its 404
    gen = pick_generator(svc, q.generator)
    prompt = await asyncio.to_thread(load_prompt, svc.settings.answer.prompt)
    grants = q.caller.grants()
    # What else decides an answer: the collections' policies (flagged chunks left out or quoted) and the settings of
    # retrieval and answering, which may differ after a restart (the cache outlives the process).
    policies = await svc.catalog.collections.policies(sorted(set(q.collections)))
    st = svc.settings
    parts: dict[str, Any] = {
        "policies": {name: policy.model_dump() for name, policy in policies.items()},
        "settings": [m.model_dump() for m in (st.answer, st.retrieval, st.rerank, st.checker)],
        "embedder": svc.embedder.model_id,
        "question": normalise(q.standalone or q.text),
        "collections": sorted(set(q.collections)),
        "filters": q.filters,
        "top_k": q.top_k or svc.settings.answer.context_k,
        "grants": "*" if grants is None else sorted(grants),
        "prompt": [prompt.id, prompt.version],
        "generator": [gen.name, svc.settings.llm.model if gen.name != "extractive" else None],
        # The gateway's endpoints, models and routes decide who answers (secrets are dumped masked).
        "gateway": st.gateway.model_dump(mode="json") if gen.name == "gateway" else None,
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest, PromptRef(id=prompt.id, version=prompt.version)


async def _still_valid(svc: Services, store: AnswerCacheStore, original: StoredAnswer) -> bool:
    read = {(c["document_id"], c["version"]) for c in original.contexts}
    active = await svc.catalog.documents.active_versions(sorted({d for d, _ in read}))
    if any(active.get(d) != v for d, v in read):
        return False
    # As of when it retrieved: a version activated while the answer was being generated counts as a change.
    as_of = original.created_at - timedelta(milliseconds=float(original.timings_ms.get("total", 0.0)))
    changed = await store.last_change(original.collections)
    return changed is None or changed < as_of


async def _serve(svc: Services, q: Question, original: StoredAnswer, started: float) -> AnswerOut:
    """The original answer again, recorded as the caller's own answer that names the original."""
    timings = {"cache": round((time.perf_counter() - started) * 1000, 2)}
    timings["total"] = timings["cache"]
    record = NewAnswer(
        key_id=q.caller.key_id,
        conversation_id=q.conversation_id,
        question=q.text,
        standalone_question=q.standalone or q.text,
        collections=q.collections,
        filters=q.filters,
        answer=original.answer,
        abstained=original.abstained,
        abstain_reason=original.abstain_reason,
        citations=original.citations,
        contexts=original.contexts,
        prompt_id=original.prompt_id,
        prompt_version=original.prompt_version,
        generator=original.generator,
        model=original.model,
        usage=Usage().model_dump(),
        timings_ms=timings,
        removed_citations=original.removed_citations,
        evidence=original.evidence,
        cached_from=original.id,
        attempts=None,  # a served copy calls no model
        rewrite=q.rewrite,  # but the chat follow-up's rewrite did, before the cache was looked up
        **trace_fields(),  # the request that was served from cache, so its logs and trace meet this row
    )
    answer_id = await save_answer(svc, record)  # scored like any answer
    out = AnswerOut(
        answer_id=answer_id,
        answer=original.answer,
        citations=[Citation(**c) for c in original.citations],
        abstained=original.abstained,
        abstain_reason=original.abstain_reason,
        prompt=PromptRef(id=original.prompt_id, version=original.prompt_version),
        generator=original.generator,
        model=original.model,
        usage=Usage(),
        timings_ms=timings,
        removed_citations=original.removed_citations,
        evidence=original.evidence,
        conversation_id=q.conversation_id,
        standalone_question=q.standalone,
        cached=True,
        cached_from=original.id,
    )
    if not await needs_redaction(svc.catalog.collections, q.collections):
        return out
    contexts = [Context(**{k: c[k] for k in Context.model_fields if k in c}, score=0.0) for c in original.contexts]
    return await redact_answer(svc.redactor, out, contexts)


async def _lookup(svc: Services, q: Question) -> tuple[AnswerOut | None, str | None, PromptRef | None]:
    """(the cached answer or None, the key to remember a fresh answer under, the prompt it must have used)."""
    started = time.perf_counter()
    keyed = await cache_key(svc, q)
    if keyed is None:
        return None, None, None
    key, prompt = keyed
    store = AnswerCacheStore(svc.catalog.engine)
    since = now() - timedelta(seconds=svc.settings.cache.answer_ttl_seconds)
    original = await store.newest(key, since)
    if original is not None and await _still_valid(svc, store, original):
        svc.cache_stats.hit(ANSWERS)
        return await _serve(svc, q, original, started), key, prompt
    svc.cache_stats.miss(ANSWERS)
    return None, key, prompt


async def _remember(svc: Services, key: str | None, prompt: PromptRef | None, out: AnswerOut) -> None:
    # The guarded prompt (flagged chunks quoted) is another prompt version: such an answer is not offered again.
    # Nor is a fallback's (over budget, or the gateway's first choice failed): the key names the LLM, which the next
    # asker gets again once the budget resets or the endpoint is back.
    ok = out.injection is None and out.fallback is None
    if key is not None and prompt is not None and out.prompt == prompt and ok:
        await AnswerCacheStore(svc.catalog.engine).remember(out.answer_id, key)


async def answer(svc: Services, q: Question) -> AnswerOut:
    cached, key, prompt = await _lookup(svc, q)
    if cached is not None:
        return cached
    out = await pipeline.answer(svc, q)
    await _remember(svc, key, prompt, out)
    return out


async def answer_stream(svc: Services, q: Question) -> AsyncIterator[str | AnswerOut]:
    cached, key, prompt = await _lookup(svc, q)
    if cached is not None:
        for word in re.findall(r"\S+\s*", cached.answer):
            yield word
        yield cached
        return
    async for item in pipeline.answer_stream(svc, q):
        if isinstance(item, AnswerOut):
            await _remember(svc, key, prompt, item)
        yield item
