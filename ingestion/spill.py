"""A job's chunks on disk between chunking and embedding.

Chunks are embedded in order of length (it keeps padding low), and a version switches only when all of its chunks
are indexed; holding every chunk of a job in memory for that made memory grow with the import (a 500 MB import
held its text several times over). Documents are chunked one at a time into an unnamed temporary file instead and
read back a batch at a time, so a job holds one document and one batch.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kernel.records import JobItem
from kernel.types import Chunk


class ChunkSpill:
    """Blocking file I/O: call `add` and advance `batches` in a thread."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        # Unlinked as it is created: the file goes away when it is closed or the process dies.
        self._file = tempfile.TemporaryFile(dir=directory)
        self.documents: list[tuple[JobItem, int]] = []
        self.chunks = 0

    def add(self, item: JobItem, chunks: list[Chunk]) -> None:
        pickle.dump((len(self.documents), chunks), self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.documents.append((item, len(chunks)))
        self.chunks += len(chunks)

    def batches(self, size: int) -> Iterator[list[tuple[JobItem, Chunk]]]:
        """Every chunk with its document, in batches of about `size` (whole documents), in the order added."""
        self._file.flush()
        self._file.seek(0)
        batch: list[tuple[JobItem, Chunk]] = []
        for _ in self.documents:
            position, chunks = pickle.load(self._file)
            item = self.documents[position][0]
            batch.extend((item, chunk) for chunk in chunks)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        self._file.close()
