"""`rag serve` with worker processes (RAG_INGESTION__WORKER_PROCESSES=N): embedded mode that ingests on more cores.

The embedded stack stays one service to start and stop: the serving process starts a store owner (`rag store`, which
alone opens the Qdrant Edge folder), serves the API on it through `RemoteStore`, keeps its embedded Valkey and SQLite
file, and starts N `rag worker` processes on the same three. The API process then runs no jobs. Every child dies
with the serving process (the kernel's parent-death signal), so a killed service leaves nothing behind; a child that
is killed alone loses only its running job, which another worker picks up after its lease.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

import httpx

from kernel.settings import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
STOP_WAIT_SECONDS = 60.0
START_WAIT_SECONDS = 300.0  # a loaded 2-core machine takes tens of seconds to import the store's libraries


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the children are still stopped by stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: subprocess.Popen[bytes] | None = None
        self.workers: list[asyncio.subprocess.Process] = []
        ours: tuple[str, ...] = ("RAG_REDIS__URL", "RAG_DATABASE__URL", "RAG_INGESTION__WORKER_PROCESSES")
        # A Qdrant server or a store owner, when configured, is shared as it is: no owner of ours is needed.
        self._own_store = not (settings.qdrant.url or settings.qdrant.store_url)
        if self._own_store:
            ours = (*ours, "RAG_QDRANT__")
        self._env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        self._env["RAG_DATA_DIR"] = str(settings.data_dir.resolve())

    def start_store(self) -> Settings:
        """Start the store owner and wait until it serves; returns the settings that point this process at it."""
        if not self._own_store:
            return self.settings
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        # Started from the main thread, which lives as long as the process: the parent-death signal is per thread.
        self.store = subprocess.Popen(
            [sys.executable, "-m", "rag", "store", "--port", str(port)], env=self._env, preexec_fn=_die_with_parent
        )
        deadline = time.monotonic() + START_WAIT_SECONDS
        while not self._serves(url):
            if self.store.poll() is not None:
                raise RuntimeError(f"the store owner exited at start with code {self.store.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the store owner at {url} did not start in {START_WAIT_SECONDS:.0f} s")
            time.sleep(0.2)
        log.info("store owner on %s (pid %d)", url, self.store.pid)
        qdrant = self.settings.qdrant.model_copy(update={"store_url": url})
        self.settings = self.settings.model_copy(update={"qdrant": qdrant})
        return self.settings

    @staticmethod
    def _serves(url: str) -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    async def start_workers(self, redis_url: str) -> None:
        """Start the worker processes on this process's queue (the embedded Valkey), database and store owner."""
        env = {
            **self._env,
            "RAG_REDIS__URL": redis_url,
            "RAG_DATABASE__URL": self.settings.database_url,
        }
        if self.settings.qdrant.store_url:
            env["RAG_QDRANT__STORE_URL"] = self.settings.qdrant.store_url
        for _ in range(self.settings.ingestion.worker_processes):
            # Forked from the event loop's thread, the main one: the parent-death signal fires when the creating
            # thread ends, and this one ends with the process.
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rag", "worker", env=env, preexec_fn=_die_with_parent
            )
            self.workers.append(proc)
        log.info("started %d worker processes: %s", len(self.workers), [p.pid for p in self.workers])

    async def stop_workers(self) -> None:
        """SIGTERM the workers (they stop taking jobs; a running job is re-queued) and wait for them."""
        workers, self.workers = self.workers, []
        for proc in workers:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                await asyncio.wait_for(proc.wait(), STOP_WAIT_SECONDS)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    def stop(self) -> None:
        for proc in self.workers:  # only when the app never got to stop them: they also die with this process
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        self.workers = []
        if self.store is not None:
            store, self.store = self.store, None
            if store.poll() is None:
                store.send_signal(signal.SIGTERM)  # the owner flushes the store as it stops
            try:
                store.wait(STOP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                store.kill()
                store.wait(10)
