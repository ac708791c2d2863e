"""Users ask here: /v1/query (JSON or SSE), /v1/chat (multi-turn), /v1/chat/completions (OpenAI-compatible)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kernel.access import Principal
from kernel.errors import InvalidInput, RagError
from kernel.usage import ModelTokens
from rag.answer_cache import answer, answer_stream  # the pipeline's, behind the answer cache
from rag.api.audit import note
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.guard import check_question, note_answer, strongest
from rag.api.params import CollectionName
from rag.budgets import over_budget
from rag.pipeline import AnswerOut, Question
from rag.prompts.registry import load_prompt
from rag.security import Asker, visible
from rag.services import Services

log = logging.getLogger(__name__)
router = APIRouter(tags=["answers"], route_class=CheckedRoute, responses=errors(*COMMON, 403, 404, 409, 502))
# The schema lists the generators this configuration has (rag/api/schema.py); the pipeline answers any other
# name with a 422 that says how to enable it.
Generator = Annotated[str, Field(max_length=64, json_schema_extra={"enum": ["extractive", "llm"]})]
# A conversation id is a uuid the service made; the cap keeps a megabyte of id out of the database.
ConversationId = Annotated[str, Field(min_length=1, max_length=128)]


def _event_stream(event: dict[str, Any] | None, data: str) -> dict[int | str, dict[str, Any]]:
    """The 200's Server-Sent Events, one schema per event (OpenAPI 3.1: `schema` describes each event)."""
    properties: dict[str, Any] = {"data": {"type": "string", "description": data}}
    if event:
        properties["event"] = event
    item = {"type": "object", "required": ["data"], "properties": properties}
    return {200: {"content": {"text/event-stream": {"schema": item}}}}


_ANSWER_EVENTS = _event_stream(
    {"type": "string", "enum": ["token", "done", "error"]},
    'JSON: {"text"} of a token, the AnswerOut when done, or {"error"}.',
)
_COMPLETION_EVENTS = _event_stream(None, "JSON: a chat.completion.chunk (citations on the last), or [DONE].")
Svc = Annotated[Services, Depends(get_services)]


# The schema shows the configured limits of question length, top_k and generators (rag/api/schema.py).
class QueryRequest(BaseModel):
    # strict: booleans and numbers only as JSON has them, as the schema says (lax, 0 was false and "5" was 5).
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"examples": [{"question": "When did the bridge open?", "collections": ["handbook"]}]},
    )

    question: str = Field(min_length=1)
    collections: list[CollectionName] = Field(min_length=1, max_length=20)
    filters: dict[str, Any] | None = Field(default=None, max_length=32)
    top_k: int | None = Field(default=None, ge=1, le=50)
    stream: bool = False
    generator: Generator | None = Field(default=None, description="Default: llm if configured, else extractive.")


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _sse_events(events: AsyncIterator[str | AnswerOut]) -> AsyncIterator[bytes]:
    try:
        async for item in events:
            if isinstance(item, AnswerOut):
                yield _sse("done", item.model_dump(mode="json"))
            else:
                yield _sse("token", {"text": item})
    except Exception as exc:  # the status line is gone: the error travels as an event
        log.exception("answer stream failed")
        message = getattr(exc, "message", None) or "internal error; the service logged the details"
        yield _sse("error", {"error": message})


async def _checked(events: AsyncIterator[str | AnswerOut]) -> AsyncIterator[str | AnswerOut]:
    """Run the pipeline up to its first item before answering, so bad input still gets a proper 4xx."""
    first = await anext(events)

    async def rest() -> AsyncIterator[str | AnswerOut]:
        yield first
        async for item in events:
            yield item

    return rest()


@router.post("/v1/query", response_model=AnswerOut, responses=_ANSWER_EVENTS)
async def query(body: QueryRequest, svc: Svc, caller: Asker, request: Request) -> Any:
    note(request, collection=body.collections[0] if len(body.collections) == 1 else None, question=body.question)
    seen = await check_question(svc, request, caller, [body.question], body.collections)
    q = Question(
        text=body.question,
        collections=body.collections,
        filters=body.filters,
        top_k=body.top_k,
        generator=body.generator,
        caller=caller,
        injection=seen.label if seen.detected else None,
    )
    if body.stream:
        events = await _checked(answer_stream(svc, q))
        return StreamingResponse(_sse_events(events), media_type="text/event-stream")
    out = await answer(svc, q)
    note(request, answer_id=out.answer_id)
    note_answer(request, seen, out.flagged_excluded, out.flagged_quoted)
    return out


# ----- chat ----------------------------------------------------------------------------------------------------
_FOLLOW_UP = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there|then|one)\b", re.I)


def standalone_question(history: list[dict[str, Any]], question: str) -> str:
    """Without an LLM: a follow-up that leans on the previous turn (pronouns, very short) borrows its question."""
    previous = [t["content"] for t in history if t["role"] == "user"]
    if not previous:
        return question
    if _FOLLOW_UP.search(question) or len(question.split()) <= 4:
        return f"{previous[-1]} {question}"
    return question


class ChatRequest(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"examples": [{"message": "How long is its main span?", "collections": ["handbook"]}]},
    )

    message: str = Field(min_length=1)
    collections: list[CollectionName] = Field(min_length=1, max_length=20)
    conversation_id: ConversationId | None = Field(default=None, description="Omit to start a conversation.")
    filters: dict[str, Any] | None = Field(default=None, max_length=32)
    top_k: int | None = Field(default=None, ge=1, le=50)
    generator: Generator | None = None


async def condense(
    svc: Services,
    caller: Principal,
    collections: list[str],
    history: list[dict[str, Any]],
    question: str,
    *,
    untrusted: bool = False,
) -> tuple[str, ModelTokens | None]:
    """The standalone question, and what an LLM spent writing it (stored with the answer, so it is in the cost).

    With an LLM: it rewrites the follow-up; without one (or if it fails), when the conversation holds an injection
    attempt (`untrusted`: no model reads it unfenced), or when a budget of the key or the collections is spent (a
    rewrite costs tokens too): the heuristic above."""
    llm = svc.generators.get("llm")
    if llm is None or untrusted or not any(t["role"] == "user" for t in history):
        return standalone_question(history, question), None
    if await over_budget(svc, caller.key_id, collections) is not None:
        return standalone_question(history, question), None  # the answer itself meets the budget next, and says so
    lines = [f"{t['role']}: {t['content']}" for t in history[-6:]]
    framed = "Conversation:\n" + "\n".join(lines) + f"\n\nLast question: {question}"
    try:
        prompt = await asyncio.to_thread(load_prompt, "condense_question")
        out = await llm.generate(framed, [], prompt)
    except RagError:
        return standalone_question(history, question), None
    spent = ModelTokens(out.model, out.usage.prompt_tokens, out.usage.completion_tokens)
    svc.telemetry.metrics.tokens(out.model, out.usage.prompt_tokens, out.usage.completion_tokens)
    rewritten = out.text.strip().splitlines()[0].strip() if out.text.strip() else ""
    return (rewritten if 3 <= len(rewritten) <= 1000 else standalone_question(history, question)), spent


@router.post("/v1/chat", response_model=AnswerOut)
async def chat(body: ChatRequest, svc: Svc, caller: Asker, request: Request) -> AnswerOut:
    note(request, collection=body.collections[0] if len(body.collections) == 1 else None, question=body.message)
    conversation_id = body.conversation_id or str(uuid.uuid4())
    turns = await svc.answers.history(conversation_id) if body.conversation_id else []
    history = [{"role": t.role, "content": t.content} for t in turns]
    owner = await svc.answers.conversation_owner(conversation_id) if history else None
    if body.conversation_id and (not history or not _may_continue(caller, owner)):
        # Someone else's conversation reads exactly like one that does not exist.
        raise InvalidInput(f"conversation {body.conversation_id!r} does not exist; omit conversation_id to start one")
    seen = await check_question(svc, request, caller, [body.message], body.collections)
    # Earlier turns were checked when they were asked; one let through as data still taints the rewrite.
    earlier = strongest([t["content"] for t in history if t["role"] == "user"])
    standalone, rewrite = await condense(
        svc, caller, body.collections, history, body.message, untrusted=seen.detected or earlier.detected
    )
    flagged = seen if seen.detected else earlier
    out = await answer(
        svc,
        Question(
            text=body.message,
            collections=body.collections,
            filters=body.filters,
            top_k=body.top_k,
            generator=body.generator,
            conversation_id=conversation_id,
            standalone=standalone,
            caller=caller,
            injection=flagged.label if flagged.detected else None,
            rewrite=rewrite,
        ),
    )
    note(request, answer_id=out.answer_id)
    note_answer(request, seen, out.flagged_excluded, out.flagged_quoted)
    return out  # saved with its two turns: a 409 (the turn was taken) leaves neither answer nor turns


def _may_continue(caller: Principal, owner: tuple[str | None, list[str]] | None) -> bool:
    """A conversation is continued only by the key that started it, while it may still see its collections."""
    if owner is None:
        return False
    key_id, collections = owner
    return caller.owns(key_id) and caller.sees_all(collections)


# ----- OpenAI-compatible ---------------------------------------------------------------------------------------
class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class CompletionRequest(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [{"model": "handbook", "messages": [{"role": "user", "content": "When did the bridge open?"}]}]
        },
    )

    model: CollectionName = Field(description="The collection to answer from.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    # Accepted for OpenAI compatibility and ignored: the service's own settings (RAG_LLM__*) decide.
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, list):
        return " ".join(str(p.get("text") or "") for p in message.content if p.get("type") == "text")
    return message.content or ""


@router.post("/v1/chat/completions", responses=_COMPLETION_EVENTS)
async def chat_completions(body: CompletionRequest, svc: Svc, caller: Asker, request: Request) -> Any:
    users = [_text(m) for m in body.messages if m.role == "user"]
    if not users or not users[-1].strip():
        raise InvalidInput("the last message must be a non-empty user message")
    note(request, collection=body.model, question=users[-1])
    # 404 before any work for an unknown collection, or one this key may not see.
    await svc.catalog.collections.filterable_fields([visible(caller, body.model)])
    history = [{"role": m.role, "content": _text(m)} for m in body.messages[:-1] if m.role in ("user", "assistant")]
    # The client sends the whole conversation: every turn of it is as untrusted as the last question.
    seen = await check_question(svc, request, caller, [users[-1], *(t["content"] for t in history)], [body.model])
    standalone, rewrite = await condense(svc, caller, [body.model], history, users[-1], untrusted=seen.detected)
    q = Question(
        text=users[-1],
        collections=[body.model],
        standalone=standalone,
        caller=caller,
        injection=seen.label if seen.detected else None,
        rewrite=rewrite,
    )
    created = int(time.time())
    if body.stream:
        events = await _checked(answer_stream(svc, q))
        return StreamingResponse(_openai_stream(events, body.model, created), media_type="text/event-stream")
    out = await answer(svc, q)
    note_answer(request, seen, out.flagged_excluded, out.flagged_quoted)
    return {
        "id": f"chatcmpl-{out.answer_id}",
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": out.answer}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": out.usage.prompt_tokens,
            "completion_tokens": out.usage.completion_tokens,
            "total_tokens": out.usage.prompt_tokens + out.usage.completion_tokens,
        },
        "citations": [c.model_dump() for c in out.citations],
        "answer_id": out.answer_id,
        "abstained": out.abstained,
        # Over a budget, where the collection's owner chose it, answered extractively (rag/budgets.py); or the model
        # gateway's first choice did not answer (`attempts` on the answer say why).
        "fallback": out.fallback,
        "fallback_budget": out.fallback_budget,
    }


async def _openai_stream(events: AsyncIterator[str | AnswerOut], model: str, created: int) -> AsyncIterator[bytes]:
    chunk_id = f"chatcmpl-{uuid.uuid4()}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        payload = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for item in events:
            if isinstance(item, AnswerOut):
                yield chunk(
                    {},
                    "stop",
                    citations=[c.model_dump() for c in item.citations],
                    answer_id=item.answer_id,
                    abstained=item.abstained,
                    fallback=item.fallback,
                    fallback_budget=item.fallback_budget,
                )
            else:
                yield chunk({"content": item})
    except Exception as exc:  # headers are sent: the OpenAI error shape, which the SDK raises as APIError
        log.exception("chat completion stream failed")
        message = getattr(exc, "message", None) or "internal error; the service logged the details"
        yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n".encode()
        return
    yield b"data: [DONE]\n\n"
