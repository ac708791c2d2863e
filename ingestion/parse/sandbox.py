"""Documents are parsed in a separate process that the worker kills at the parse timeout.

Why a process and not a thread with a watchdog: parsing runs inside C extensions and other programs (lxml,
pdfminer's loops, spaCy, pandoc), and a Python thread cannot be interrupted there; it could only be abandoned,
still burning a core and holding its memory. A process can be killed, with everything it started (it leads its
own process group, so pandoc goes too). It also gets a memory cap of its own (see `ingestion.parse.child`), and a
parser that crashes (a C stack overflow on a deeply nested file) takes only itself down, not the service.

One parser process serves one document at a time; it is started on first use (importing unstructured takes
seconds), restarted after a kill or a crash, and replaced after `RECYCLE_AFTER` documents, which sheds the caches
unstructured keeps between documents. The document's bytes are streamed to it from the blob store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
from pathlib import Path
from typing import IO, Any, BinaryIO

from ingestion.parse.limits import ParseLimits
from kernel.errors import DocumentError
from kernel.settings import IngestionSettings
from kernel.types import ParsedElement

log = logging.getLogger(__name__)

READY = b"ready"
RECYCLE_AFTER = 200
# Importing unstructured, spaCy and torch, on a busy machine.
START_TIMEOUT_SECONDS = 300.0
_LENGTH = struct.Struct(">Q")
_PIECE = 1 << 20
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload; None at the end of the stream."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return payload


class ParserFailed(RuntimeError):
    """The parser process failed for a reason of our own (it did not start, our code raised): not the document's."""


class ParseSandbox:
    """Read from `settings` at every document, so a changed limit applies to the next one (the memory cap
    restarts the process)."""

    def __init__(self, settings: IngestionSettings) -> None:
        self._settings = settings
        self._process: asyncio.subprocess.Process | None = None
        self._memory_mb = 0  # the cap the running process was started with
        self._served = 0
        self._lock = asyncio.Lock()

    async def parse(self, source: BinaryIO, filename: str) -> list[ParsedElement]:
        """The document's elements, or DocumentError (also for a timeout or a crash of the parser)."""
        name = Path(filename).name or filename
        timeout = self._settings.parse_timeout_seconds
        async with self._lock:
            process = await self._ready()
            try:
                kind, value = await asyncio.wait_for(self._exchange(process, source, filename), timeout)
            except TimeoutError:
                await self._kill()
                raise DocumentError(
                    f"{name} took longer than {timeout:g} s to parse and was stopped "
                    "(RAG_INGESTION__PARSE_TIMEOUT_SECONDS): it is malformed (a structure that loops, a "
                    "decompression bomb) or too large; split it into smaller files"
                ) from None
            except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
                raise self._died(name, await self._reap()) from None
            except BaseException:
                # Cancelled (the job was stopped) or our own failure: the process is mid-document, start afresh.
                await self._kill()
                raise
            self._served += 1
            if self._served >= RECYCLE_AFTER:
                await self._kill()
        return self._result(kind, value, name)

    async def close(self) -> None:
        async with self._lock:
            await self._kill()

    async def _ready(self) -> asyncio.subprocess.Process:
        memory_mb = self._settings.parse_memory_mb
        if self._process is not None and self._process.returncode is None and self._memory_mb == memory_mb:
            return self._process
        await self._kill()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")])),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ingestion.parse.child",
            str(memory_mb),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            # Its own process group: a kill reaches the pandoc processes it starts too.
            start_new_session=True,
        )
        self._process, self._served, self._memory_mb = process, 0, memory_mb
        try:
            ready = await asyncio.wait_for(self._receive(process), START_TIMEOUT_SECONDS)
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            code = await self._kill()
            raise ParserFailed(f"the parser process did not start (exit status {code}); see the log") from exc
        except BaseException:
            await self._kill()  # cancelled mid-start: its "ready" must not be read as the next reply
            raise
        if ready != READY:
            await self._kill()
            raise ParserFailed(f"the parser process said {ready[:80]!r} instead of being ready")
        return process

    async def _exchange(self, process: asyncio.subprocess.Process, source: BinaryIO, filename: str) -> tuple[str, Any]:
        assert process.stdin is not None
        request = {"filename": filename, "limits": ParseLimits.of(self._settings)}
        await self._send(process.stdin, pickle.dumps(request))
        while piece := await asyncio.to_thread(source.read, _PIECE):
            await self._send(process.stdin, piece)
        await self._send(process.stdin, b"")
        reply = pickle.loads(await self._receive(process))
        return reply[0], reply[1]

    @staticmethod
    async def _send(stdin: asyncio.StreamWriter, payload: bytes) -> None:
        stdin.write(_LENGTH.pack(len(payload)))
        stdin.write(payload)
        await stdin.drain()

    @staticmethod
    async def _receive(process: asyncio.subprocess.Process) -> bytes:
        assert process.stdout is not None
        (size,) = _LENGTH.unpack(await process.stdout.readexactly(_LENGTH.size))
        return await process.stdout.readexactly(size)

    def _result(self, kind: str, value: Any, name: str) -> list[ParsedElement]:
        if kind == "ok":
            return [ParsedElement(text=t, type=k, page=p, section=s) for t, k, p, s in value]
        if kind == "document":
            raise DocumentError(value)
        if kind == "memory":
            raise DocumentError(
                f"{name} needs more than {self._memory_mb:,} MB of memory to parse (RAG_INGESTION__PARSE_MEMORY_MB): "
                "it is too large, or built to exhaust a parser; split it into smaller files"
            )
        raise ParserFailed(f"parsing {name} failed in our code: {value}")

    def _died(self, name: str, code: int | None) -> DocumentError:
        how = f"exit status {code}"
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                how = signal.Signals(-code).name
        return DocumentError(
            f"{name} made the parser crash ({how}): the file is malformed (nested far too deeply, say) or needs "
            f"more than the {self._memory_mb:,} MB of memory parsing may use (RAG_INGESTION__PARSE_MEMORY_MB)"
        )

    async def _reap(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(process.wait(), 10)
        await self._kill_process(process)
        return process.returncode

    async def _kill(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        await self._kill_process(process)
        return process.returncode

    @staticmethod
    async def _kill_process(process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await process.wait()
