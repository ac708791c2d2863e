"""An OpenAI-compatible chat endpoint on 127.0.0.1 that records what the service asked and what it was answered.

Two modes, both real HTTP on loopback, so the service's own OpenAI-compatible generator (and the `openai` SDK under
it) runs unmodified:

- canned, `ChatServer(["The Moon ", "orbits [1]."])`: every chat completion is answered with the pieces, joined, or
  one piece per chunk when the request streams. It stands in for an LLM that must say one particular thing (misquote
  its source, cite a context that does not exist): a real small model cannot be made to. `pieces` may be changed
  between requests.
- forwarding, `ChatServer(upstream=llama.base_url)`: each request goes to a real server and its answer comes back
  unchanged (a streamed answer is passed on whole, once complete), so a test can prove the service asked the model
  and used what it said.

Either mode can be made to fail on demand, for the model gateway's fallbacks: `status=503` answers every POST with
that status, `delay_s=5` answers only after that long (past a client's timeout), `cut_stream = True` drops a streamed
answer's connection after its first event. `requests` counts every POST
received, answered or not; `port=` serves on a given port (an endpoint that was down comes back).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from tests.support.loopback import send, serve, shut

UPSTREAM_TIMEOUT_S = 900.0  # a hang guard: Gemma 270M on a loaded 2-core machine can take minutes


@dataclass
class Exchange:
    request: dict[str, Any]  # the JSON body the service posted
    reply: str  # the text of the answer it got back
    usage: dict[str, Any] | None = None  # the token counts it was told, if any


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-canned",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 30, "total_tokens": 130},
    }


def _chunk(model: str, content: str | None, finish: str | None = None) -> str:
    chunk = {
        "id": "chatcmpl-canned",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


def reply(body: bytes, content_type: str) -> tuple[str, dict[str, Any] | None]:
    """The answer's text and usage in a chat.completion (JSON) or a stream of chunks (SSE)."""
    if content_type.startswith("text/event-stream"):
        parts, usage = [], None
        for line in body.decode().splitlines():
            if line.startswith("data: ") and line[6:].strip() != "[DONE]":
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    parts.append((choice.get("delta") or {}).get("content") or "")
        return "".join(parts), usage
    data = json.loads(body or b"{}")
    choices = data.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or ""), data.get("usage")


class ChatServer:
    def __init__(
        self,
        pieces: list[str] | None = None,
        *,
        upstream: str | None = None,
        model: str = "canned",
        status: int | None = None,
        delay_s: float = 0.0,
        port: int = 0,
    ):
        assert (pieces is None) != (upstream is None), "either canned pieces or an upstream URL"
        self.pieces = pieces or []
        self.status = status  # may be changed between requests, like `pieces`
        self.delay_s = delay_s
        self.cut_stream = False  # True: a streamed answer stops after its first event (the connection drops)
        self.port = port
        self.requests = 0
        self._lock = threading.Lock()
        self.upstream = upstream.rstrip("/") if upstream else None
        self.model = model
        self.exchanges: list[Exchange] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def _answer(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for a POST."""
        with self._lock:
            self.requests += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.status is not None:
            error = {"error": {"message": f"failing on purpose with HTTP {self.status}", "type": "server_error"}}
            return self.status, "application/json", json.dumps(error).encode()
        if self.upstream is not None:
            assert path.startswith("/v1/")
            resp = httpx.post(
                self.upstream + path[len("/v1") :],
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=UPSTREAM_TIMEOUT_S,
            )
            kind = resp.headers.get("content-type", "application/json")
            if resp.status_code == 200:
                self.exchanges.append(Exchange(json.loads(body), *reply(resp.content, kind)))
            return resp.status_code, kind, resp.content
        if path.rstrip("/") != "/v1/chat/completions":
            return 404, "application/json", json.dumps({"error": {"message": f"no route {path}"}}).encode()
        request = json.loads(body or b"{}")
        text = "".join(self.pieces)
        if request.get("stream"):  # no usage chunk, like llama.cpp's server
            self.exchanges.append(Exchange(request, text))
            events = [_chunk(self.model, piece) for piece in self.pieces]
            events += [_chunk(self.model, None, finish="stop"), "data: [DONE]\n\n"]
            return 200, "text/event-stream", "".join(events).encode()
        completion = _completion(self.model, text)
        self.exchanges.append(Exchange(request, text, completion["usage"]))
        return 200, "application/json", json.dumps(completion).encode()

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(*server._answer(self.path, body))

            def _send(self, status: int, kind: str, data: bytes) -> None:
                if server.cut_stream and kind.startswith("text/event-stream"):
                    # The first event, then the connection drops before the announced length: a server that
                    # fails mid-answer.
                    first = data.split(b"\n\n", 1)[0] + b"\n\n"
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(first)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                send(self, status, kind, data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._httpd, self._thread = serve(Handler, "chat-server", self.port)

    def stop(self) -> None:
        shut(self._httpd, self._thread)
        self._httpd, self._thread = None, None

    def __enter__(self) -> ChatServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
