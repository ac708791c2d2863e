"""The audit log: append-only and hash-chained, so that an edited, inserted or deleted entry is found.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own fields; the head table holds the
newest sequence number and hash, so removing the newest entries breaks the chain too. Every append starts by
updating the head row, which makes concurrent appenders (threads, workers, the CLI) take turns on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.records import AuditCheck, AuditEntry, AuditQuery, NewAuditEntry
from rag.storage.engine import Transaction
from rag.storage.schema import AUDIT_GENESIS, audit_head, audit_log

_FIELDS = [f.name for f in dataclasses.fields(NewAuditEntry)]
VERIFY_BATCH = 5000


def entry_hash(prev_hash: str, seq: int, at: str, fields: dict[str, Any]) -> str:
    body = json.dumps({"seq": seq, "at": at, **{k: fields[k] for k in _FIELDS}}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(**{k: row[k] for k in (*_FIELDS, "seq", "at", "prev_hash", "hash")})


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def append(self, new: NewAuditEntry) -> int:
        fields = dataclasses.asdict(new)
        async with Transaction(self._engine) as conn:
            # The write lock first (a no-op UPDATE), then the head: no two appenders read the same head.
            await conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=audit_head.c.seq))
            head = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).one()
            seq = int(head.seq) + 1
            at = datetime.now(UTC).isoformat(timespec="microseconds")
            digest = entry_hash(head.hash, seq, at, fields)
            await conn.execute(audit_log.insert().values(**fields, seq=seq, at=at, prev_hash=head.hash, hash=digest))
            await conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=digest))
        return seq

    async def query(self, q: AuditQuery) -> list[AuditEntry]:
        where = [audit_log.c.seq > q.after_seq]
        if q.since:
            where.append(audit_log.c.at >= q.since)
        if q.until:
            where.append(audit_log.c.at < q.until)
        for name in ("key_id", "action", "collection", "outcome"):
            if (value := getattr(q, name)) is not None:
                where.append(audit_log.c[name] == value)
        select = audit_log.select().where(*where).order_by(audit_log.c.seq).limit(q.limit)
        async with Transaction(self._engine) as conn:
            rows = (await conn.execute(select)).mappings().all()
        return [_entry(r) for r in rows]

    async def _batches(self) -> AsyncIterator[list[AuditEntry]]:
        after = 0
        while batch := await self.query(AuditQuery(after_seq=after, limit=VERIFY_BATCH)):
            yield batch
            after = batch[-1].seq

    async def verify(self) -> AuditCheck:
        """Walk the chain from the first entry; the first entry whose link or hash does not hold is reported."""
        prev_hash, expected_seq, count = AUDIT_GENESIS, 1, 0
        async for batch in self._batches():
            for e in batch:
                fields = {k: getattr(e, k) for k in _FIELDS}
                if e.seq != expected_seq:
                    return AuditCheck(count, expected_seq, f"entry {expected_seq} is missing")
                if e.prev_hash != prev_hash:
                    return AuditCheck(count, e.seq, f"entry {e.seq} does not follow entry {e.seq - 1}")
                if entry_hash(prev_hash, e.seq, e.at, fields) != e.hash:
                    return AuditCheck(count, e.seq, f"entry {e.seq} was changed after it was written")
                prev_hash, expected_seq, count = e.hash, expected_seq + 1, count + 1
        async with Transaction(self._engine) as conn:
            head = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).one()
        if (int(head.seq), head.hash) != (expected_seq - 1, prev_hash):
            last = expected_seq - 1
            return AuditCheck(count, expected_seq, f"the log ends at entry {last}; the head says {head.seq}")
        return AuditCheck(count)
