"""A stand-in judge for the ragas scorer tests: a real OpenAI-compatible HTTP server on 127.0.0.1.

It answers ragas' prompts (the collections metrics of ragas 0.4: statement generation, statement NLI, context
precision, context recall) with correctly shaped JSON computed by a fixed rule instead of a model:

- the statements of a text are its sentences;
- a statement is supported by a context iff every number in it and at least 60% of its content words (3+ letters,
  not a stop word) occur in the context.

Only the protocol is stood in for: the scorer, ragas, instructor and the `openai` SDK all run for real, over HTTP.
`POST /v1/chat/completions` is non-streaming; a request with `tools` is answered with a tool call to the first
tool (instructor's TOOLS mode), any other request with the JSON as the message content (JSON mode and
`response_format`).

`mode` makes it fail on purpose: "error" answers 500, "garbage" answers text that is not JSON, "slow" waits
`delay_s` before answering; `fail_kinds` restricts the failure to some prompt kinds ("statements", "nli",
"precision", "recall"), so one metric can fail while the others succeed.

Usage:

    with JudgeServer() as judge:
        scorer = RagasScorer(Endpoint(judge.base_url, judge.model, ...))
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.support.loopback import send, serve, shut

MODEL = "rule-judge"
_INPUT_MARK = "Now perform the same with the following input"
_STOP_WORDS = frozenset(
    "the and for are was were with that this from has have had its into not but than then also which who whom "
    "what when where why how all any can will would should could been being does did about over under".split()
)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in re.findall(r"\d+(?:[.,]\d+)*", text)}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in _STOP_WORDS}


def supported(statement: str, context: str) -> tuple[bool, str]:
    """The rule: (verdict, reason)."""
    missing_numbers = sorted(_numbers(statement) - _numbers(context))
    if missing_numbers:
        return False, f"the context does not mention {', '.join(missing_numbers)}"
    words = _words(statement)
    if not words:
        return bool(_numbers(statement)), "the statement has no content word to check"
    found = words & _words(context)
    if len(found) >= 0.6 * len(words):
        return True, "its numbers and most of its words occur in the context"
    return False, f"the context lacks {', '.join(sorted(words - found))}"


def judge(prompt: str) -> tuple[str, dict[str, Any]]:
    """The kind of ragas prompt and the JSON a perfect rule-following judge returns for it."""
    start = prompt.rfind(_INPUT_MARK)
    end = prompt.rfind("Output:")
    if start < 0 or end < start:
        raise ValueError("not a ragas metric prompt")
    data = json.loads(prompt[prompt.index("input:", start) + len("input:") : end])
    if "statements" in data:  # Faithfulness, step 2: NLI of each statement against the joined contexts
        verdicts = [supported(s, data["context"]) for s in data["statements"]]
        return "nli", {
            "statements": [
                {"statement": s, "reason": reason, "verdict": int(ok)}
                for s, (ok, reason) in zip(data["statements"], verdicts, strict=True)
            ]
        }
    if "context" not in data:  # Faithfulness, step 1: break the answer into statements
        return "statements", {"statements": sentences(data["answer"])}
    if '"classifications"' in prompt:  # ContextRecall: is each sentence of the reference in the contexts?
        rows = [(s, *supported(s, data["context"])) for s in sentences(data["answer"])]
        return "recall", {
            "classifications": [{"statement": s, "reason": reason, "attributed": int(ok)} for s, ok, reason in rows]
        }
    # Context precision: is this one context useful, i.e. does it support a sentence of the answer?
    useful = [s for s in sentences(data["answer"]) if supported(s, data["context"])[0]]
    reason = f"it supports: {useful[0]}" if useful else "it supports no sentence of the answer"
    return "precision", {"reason": reason, "verdict": int(bool(useful))}


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    """The ragas prompt: the last message that carries one (instructor may add system and re-ask messages)."""
    texts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str):
            texts.append(content)
    return next((t for t in reversed(texts) if _INPUT_MARK in t), "")


def completion(body: dict[str, Any], payload: dict[str, Any] | None, text: str | None = None) -> dict[str, Any]:
    """An OpenAI chat.completion object carrying `payload` (as a tool call when tools were offered) or `text`."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "stop"
    if payload is not None:
        arguments = json.dumps(payload)
        tools = body.get("tools") or []
        if tools:
            name = tools[0]["function"]["name"]
            message["content"] = None
            message["tool_calls"] = [
                {"id": "call_0", "type": "function", "function": {"name": name, "arguments": arguments}}
            ]
            finish = "tool_calls"
        else:
            message["content"] = arguments
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODEL),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(body, json.dumps(message)),
    }


def _usage(body: dict[str, Any], reply: str) -> dict[str, int]:
    """Token counts that differ from request to request (words, not a tokenizer's tokens): a scorer that adds up
    the `usage` of every reply can be checked against the sum of what was sent."""
    prompt = len(json.dumps(body.get("messages", [])).split())
    completion = len(reply.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@dataclass
class Request:
    kind: str
    body: dict[str, Any]
    usage: dict[str, int] | None = None  # what the reply said it used (none on an HTTP error)
    status: int | None = None  # set once the reply is decided


@dataclass
class JudgeServer:
    mode: str = "ok"  # "ok" | "error" | "garbage" | "slow"
    fail_kinds: frozenset[str] | None = None  # None: every kind fails (in a failing mode)
    delay_s: float = 5.0
    model: str = MODEL
    requests: list[Request] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def kinds(self) -> list[str]:
        return [r.kind for r in self.requests]

    def _fails(self, kind: str) -> bool:
        return self.mode != "ok" and (self.fail_kinds is None or kind in self.fail_kinds)

    def tokens(self) -> tuple[int, int]:
        """Prompt and completion tokens of every reply so far."""
        used = [r.usage for r in self.requests if r.usage]
        return sum(u["prompt_tokens"] for u in used), sum(u["completion_tokens"] for u in used)

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            kind, payload = judge(_prompt_text(body.get("messages", [])))
        except (ValueError, KeyError, TypeError) as exc:
            self.requests.append(Request("unknown", body))
            return 400, {"error": {"message": f"stand-in judge: {exc}", "type": "invalid_request_error"}}
        request = Request(kind, body)
        self.requests.append(request)
        status, reply = self._respond(kind, body, payload)
        if status == 200:
            request.usage = reply["usage"]
        request.status = status
        return status, reply

    def _respond(self, kind: str, body: dict[str, Any], payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not self._fails(kind):
            return 200, completion(body, payload)
        if self.mode == "error":
            return 500, {"error": {"message": "stand-in judge: failing on purpose", "type": "server_error"}}
        if self.mode == "garbage":
            return 200, completion(body, None, text="I'm sorry, I cannot help with that. {verdict: maybe")
        time.sleep(self.delay_s)  # "slow"
        return 200, completion(body, payload)

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    return self._send(400, {"error": {"message": "the body is not JSON"}})
                return self._send(*server.respond(body))

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                send(self, status, "application/json", json.dumps(payload).encode())

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._httpd, self._thread = serve(Handler, "judge-server")

    def stop(self) -> None:
        shut(self._httpd, self._thread)
        self._httpd, self._thread = None, None

    def __enter__(self) -> JudgeServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
