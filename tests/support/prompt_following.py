"""A stand-in LLM for the quality gate's test of a worse prompt: an OpenAI-compatible server on loopback whose answer
depends on the instructions it is given, as a capable model's would.

Why a stand-in: the one LLM that runs here (Gemma 3 270M, tests/llm_server.py) cites nothing with the shipped prompt
(every answer abstains, ~35 s a question on this machine), so it cannot tell a good prompt from a bad one. This server
follows two instructions of the system prompt, and nothing else decides its answer:
- "only ... sources" (and no "own/general knowledge"): it answers with the source sentence that shares most words
  with the question, cited; with no such sentence, "The documents don't say.".
- otherwise: the same sentence, plus a related "fact" of its own, cited to the same source (what models told to
  use their own knowledge do), which the sources do not support.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.support.loopback import send, serve, shut

_SOURCE = re.compile(r"^\[(\d+)\] [^\n]*\n(.*?)(?=\n\n\[\d+\] |\n\nQuestion:|\n\nThe user's question|\Z)", re.M | re.S)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the of to in on at for is are was were what which who when where how does did do and".split())
INVENTED = "It was also the subject of a famous 1742 survey by Captain Arthur Pemberton of the Royal Navy"


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def grounded(system: str) -> bool:
    return bool(re.search(r"\bonly\b.*\bsources\b", system, re.S)) and not re.search(
        r"\b(own|general) knowledge\b", system
    )


def answer(system: str, user: str) -> str:
    question = user.rsplit("Question:", 1)[-1].split("\n\n", 1)[0]
    wanted = _words(question)
    best: tuple[int, int, str] = (0, 0, "")
    for n, text in _SOURCE.findall(user.split("Sources:", 1)[-1]):
        for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
            overlap = len(wanted & _words(sentence))
            if overlap > best[0]:
                best = (overlap, int(n), sentence.rstrip(" ."))
    overlap, n, sentence = best
    if grounded(system):
        return f"{sentence} [{n}]." if overlap else "The documents don't say."
    return f"{sentence or 'It is well known'} [{n or 1}]. {INVENTED} [{n or 1}]."


class PromptFollowingServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def reply(self, body: bytes) -> bytes:
        request = json.loads(body or b"{}")
        self.requests.append(request)
        messages = request.get("messages") or []
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        text = answer(system, user)
        return json.dumps(
            {
                "id": "chatcmpl-following",
                "object": "chat.completion",
                "created": 0,
                "model": "prompt-following",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(system + user) // 4, "completion_tokens": len(text) // 4},
            }
        ).encode()

    def __enter__(self) -> PromptFollowingServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                send(self, 200, "application/json", server.reply(body))

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._httpd, self._thread = serve(Handler, "prompt-following")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        shut(self._httpd, self._thread)
        self._httpd, self._thread = None, None
