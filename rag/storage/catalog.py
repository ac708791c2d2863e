"""The metadata database as the service holds it: one engine, and a store per concern on it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from rag.storage import migrate
from rag.storage.collections import CollectionStore
from rag.storage.documents import DocumentStore
from rag.storage.engine import Transaction, make_engine
from rag.storage.generations import GenerationStore
from rag.storage.jobs import JobStore
from rag.storage.versions import VersionStore


class Catalog:
    """Collections, documents and their versions, ingestion jobs. SQLite embedded, PostgreSQL in production."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = make_engine(url)
        self.collections = CollectionStore(self.engine)
        self.documents = DocumentStore(self.engine)
        self.versions = VersionStore(self.engine)
        self.jobs = JobStore(self.engine)
        self.generations = GenerationStore(self.engine)

    async def prepare_schema(self, *, auto_upgrade: bool = True) -> None:
        """Upgrade the database to this release's schema, or (`auto_upgrade` off) refuse with the command to run."""
        await migrate.prepare(self.url, auto_upgrade=auto_upgrade)

    async def ping(self) -> None:
        async with Transaction(self.engine) as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.engine.dispose()
