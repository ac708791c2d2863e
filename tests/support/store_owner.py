"""A store owner (`rag.store_owner`) served by uvicorn on a free loopback port, in a thread of the test process.

Real HTTP, the same app `rag store` runs; the split-mode test starts the `rag store` command itself instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from rag.store_owner import create_store_app
from retrieval.stores.qdrant_edge import QdrantEdgeStore
from tests.support.polling import poll_sync
from tests.support.ports import free_port


@contextmanager
def served_edge_store(path: Path) -> Iterator[str]:
    """The URL of a store owner serving a Qdrant Edge store at `path`; stopped (and the store flushed) on exit."""
    port = free_port()
    config = uvicorn.Config(
        create_store_app(QdrantEdgeStore(path)), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"store-owner-{port}", daemon=True)
    thread.start()
    try:
        poll_sync(lambda: server.started or not thread.is_alive(), bool, what=f"the store owner on port {port}")
        assert thread.is_alive(), "the store owner stopped at start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
