"""A job's documents as elements, one document at a time and read as streams.

Uploads are streamed from the blob store into the parser process; imports are read line by line from their stored
body, and only the records the job indexes are parsed. So a job never holds a whole import, and an upload only
in the parser process, which has a memory cap of its own.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ingestion.records import read_records, record_elements
from kernel.errors import DocumentError
from kernel.ports import BlobReader
from kernel.records import JobItem
from kernel.types import ImportRecord, ParsedElement

# Records read per hand-off to a thread: one per record would cost more in hand-offs than in reading.
_RECORDS_PER_READ = 64

Loaded = tuple[JobItem, list[ParsedElement] | str]  # the elements, or why the document cannot be ingested


class DocumentParser(Protocol):
    async def parse(self, source: BinaryIO, filename: str) -> list[ParsedElement]:
        """The document's elements; DocumentError with the reason a person can act on."""
        ...


@dataclass
class Loader:
    blobs: BlobReader
    parser: DocumentParser

    async def load(self, kind: str, items: Sequence[JobItem]) -> AsyncGenerator[Loaded, None]:
        if kind == "import":
            async for loaded in self._records(items):
                yield loaded
            return
        for item in items:
            source = await asyncio.to_thread(self.blobs.open, item.blob)
            try:
                yield item, await self.parser.parse(source, item.filename)
            except DocumentError as exc:
                yield item, exc.message
            finally:
                source.close()

    async def _records(self, items: Sequence[JobItem]) -> AsyncIterator[Loaded]:
        by_blob: dict[str, dict[int, JobItem]] = defaultdict(dict)
        for item in items:
            assert item.record_index is not None
            by_blob[item.blob][item.record_index] = item
        for blob, wanted in by_blob.items():
            source = await asyncio.to_thread(self.blobs.open, blob)
            try:
                records = read_records(source, wanted)
                while batch := await asyncio.to_thread(_take, records, _RECORDS_PER_READ):
                    for index, record in batch:
                        yield wanted[index], record_elements(record)
            finally:
                source.close()


def _take(records: Iterator[tuple[int, ImportRecord]], n: int) -> list[tuple[int, ImportRecord]]:
    return list(itertools.islice(records, n))
