"""How much one document may unpack to and contain: what parsing refuses before it costs unbounded time or memory."""

from __future__ import annotations

from dataclasses import dataclass

from kernel.settings import IngestionSettings

# No real document comes near this many parts; a zip of tiny entries is a bomb of its own (each costs memory
# before a parser even starts).
MAX_ARCHIVE_ENTRIES = 10_000


@dataclass(frozen=True)
class ParseLimits:
    max_unpacked_bytes: int = 100 * 1024 * 1024
    max_chars: int = 5_000_000
    max_archive_entries: int = MAX_ARCHIVE_ENTRIES

    @classmethod
    def of(cls, settings: IngestionSettings) -> ParseLimits:
        return cls(max_unpacked_bytes=settings.max_unpacked_bytes, max_chars=settings.max_document_chars)
