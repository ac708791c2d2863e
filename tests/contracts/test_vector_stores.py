"""The VectorStore contract: one suite of test methods that every store runs.

`VectorStoreContract` holds the tests; each concrete `Test...` class below supplies one fixture, `open_store`: a
function that opens a store over the same persistent location every time it is called (so a test can close the
store and open it again). The tests never ask which store they have.

- Qdrant Edge: the embedded store, on disk in a temporary folder.
- The server store: QdrantServerStore on qdrant-client's local engine (`AsyncQdrantClient(path=...)`), since no
  Qdrant server runs here. The local engine mirrors the server's semantics (it rejects what the server rejects);
  it ignores payload indexes, so the tests assert what filters return, not that an index was used.
- The remote store: RemoteStore, the client of a store owner (`rag store`) serving Qdrant Edge over loopback HTTP.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernel.errors import RagError, TransientError
from kernel.filters import Condition, FieldType, FilterSpec
from kernel.protocols import SearchMode, SearchPlan, VectorStore
from kernel.types import ChunkRecord, ChunkSelector, ChunkState, Hit
from retrieval.sparse import Bm25Encoder

DIM = 4
MODES: tuple[SearchMode, ...] = ("dense", "sparse", "hybrid")
BM25 = Bm25Encoder()

Key = tuple[str, int, int]  # (document_id, version, chunk_index): which chunk a hit is


def chunk_id(doc: str, version: int, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{doc}/{version}/{index}"))


def make_record(
    doc: str,
    version: int,
    index: int,
    *,
    collection: str,
    state: ChunkState,
    text: str,
    vec: Sequence[float],
    filename: str,
    kind: str,
    page: int,
    created_at: str,
    metadata: dict[str, Any],
) -> ChunkRecord:
    """A chunk record shaped like the indexer's (ingestion/index.py), with a few awkward payload values."""
    return ChunkRecord(
        id=chunk_id(doc, version, index),
        dense=list(vec),
        sparse=BM25.encode_document(text),
        payload={
            "collection": collection,
            "document_id": doc,
            "version": version,
            "chunk_index": index,
            "text": text,
            "page": page,
            "page_end": None,
            "section": "Überblick" if doc == "c" else None,
            "element_types": ["Title", "NarrativeText"],
            "filename": filename,
            "kind": kind,
            "job_id": f"job-{doc}-{version}",
            "state": state.value,
            "created_at": created_at,
            "metadata": metadata,
        },
    )


def _meta(year: int, lang: str, published: str, score: float) -> dict[str, Any]:
    return {"year": year, "lang": lang, "published": published, "score": score, "tags": ["x", 1]}


# Every text holds "river", so the sparse query "river" reaches every chunk and filters decide what comes back.
RECORDS = [
    make_record(
        "a", 1, 0, collection="c1", state=ChunkState.active, text="The river bank holds apples.", vec=[1, 0, 0, 0],
        filename="a.pdf", kind="pdf", page=1, created_at="2024-01-10T09:00:00+00:00",
        metadata=_meta(2001, "en", "2001-05-01T00:00:00+00:00", 0.9),
    ),
    make_record(
        "a", 1, 1, collection="c1", state=ChunkState.active, text="A river of orchards and bees.",
        vec=[0.9, 0.1, 0, 0], filename="a.pdf", kind="pdf", page=2, created_at="2024-01-10T09:00:00+00:00",
        metadata=_meta(2001, "en", "2001-05-01T00:00:00+00:00", 0.9),
    ),
    make_record(
        "b", 1, 0, collection="c1", state=ChunkState.retired, text="Rockets cross the river of stars.",
        vec=[0, 1, 0, 0], filename="b.txt", kind="txt", page=1, created_at="2024-01-20T09:00:00+00:00",
        metadata=_meta(2010, "en", "2010-01-01T00:00:00+00:00", 0.2),
    ),
    make_record(
        "b", 2, 0, collection="c1", state=ChunkState.active, text="Rockets burn fuel beside the river.",
        vec=[0, 0.9, 0.1, 0], filename="b.txt", kind="txt", page=1, created_at="2024-02-20T09:00:00+00:00",
        metadata=_meta(2010, "en", "2010-01-01T00:00:00+00:00", 0.2),
    ),
    make_record(
        "c", 1, 0, collection="c2", state=ChunkState.active, text="The river Seine flows through Paris and Zürich.",
        vec=[0, 0, 1, 0], filename="c.docx", kind="docx", page=3, created_at="2024-03-01T09:00:00+00:00",
        metadata=_meta(2020, "fr", "2020-06-01T00:00:00+00:00", 0.5),
    ),
    make_record(
        "d", 1, 0, collection="c2", state=ChunkState.staged, text="A staged river.", vec=[0, 0, 0, 1],
        filename="d.md", kind="md", page=5, created_at="2024-05-01T09:00:00+00:00",
        metadata=_meta(2023, "fr", "2023-01-01T00:00:00+00:00", 0.6),
    ),
    make_record(
        "e", 1, 0, collection="c3", state=ChunkState.active, text="The river Rhine.", vec=[0.5, 0.5, 0.5, 0.5],
        filename="e.html", kind="html", page=7, created_at="2024-06-01T09:00:00+00:00",
        metadata=_meta(2015, "de", "2015-01-01T00:00:00+00:00", 0.7),
    ),
]  # fmt: skip
BY_KEY: dict[Key, ChunkRecord] = {
    (r.payload["document_id"], r.payload["version"], r.payload["chunk_index"]): r for r in RECORDS
}
VISIBLE: set[Key] = {k for k, r in BY_KEY.items() if r.payload["state"] == "active"}
ALL_COLLECTIONS = ["c1", "c2", "c3"]
METADATA_INDEXES: dict[str, FieldType] = {
    "metadata.year": "integer",
    "metadata.lang": "keyword",
    "metadata.published": "datetime",
    "metadata.score": "float",
}


def key(hit: Hit) -> Key:
    return (hit.payload["document_id"], hit.payload["version"], hit.payload["chunk_index"])


def cond(field: str, type_: FieldType, **ops: Any) -> Condition:
    return Condition(field=field, type=type_, **ops)


# (case id, collections, conditions, the chunks a search may return). Values have the types `parse_filters` makes.
FILTER_CASES: list[tuple[str, list[str], list[Condition], set[Key]]] = [
    ("one-collection", ["c1"], [], {("a", 1, 0), ("a", 1, 1), ("b", 2, 0)}),
    ("two-collections", ["c1", "c2"], [], {("a", 1, 0), ("a", 1, 1), ("b", 2, 0), ("c", 1, 0)}),
    ("unknown-collection", ["nope"], [], set()),
    ("keyword-eq", ALL_COLLECTIONS, [cond("filename", "keyword", eq="c.docx")], {("c", 1, 0)}),
    ("keyword-any", ALL_COLLECTIONS, [cond("kind", "keyword", any=["pdf", "html"])],
     {("a", 1, 0), ("a", 1, 1), ("e", 1, 0)}),
    ("keyword-eq-inactive-only", ALL_COLLECTIONS, [cond("document_id", "keyword", eq="d")], set()),
    ("integer-eq", ALL_COLLECTIONS, [cond("page", "integer", eq=1)], {("a", 1, 0), ("b", 2, 0)}),
    ("integer-range", ALL_COLLECTIONS, [cond("page", "integer", gte=2, lt=7)], {("a", 1, 1), ("c", 1, 0)}),
    ("integer-any", ALL_COLLECTIONS, [cond("metadata.year", "integer", any=[2020, 2023])], {("c", 1, 0)}),
    ("metadata-integer-range", ALL_COLLECTIONS, [cond("metadata.year", "integer", lt=2016)],
     {("a", 1, 0), ("a", 1, 1), ("b", 2, 0), ("e", 1, 0)}),
    ("metadata-keyword", ALL_COLLECTIONS, [cond("metadata.lang", "keyword", eq="fr")], {("c", 1, 0)}),
    ("metadata-float-range", ALL_COLLECTIONS, [cond("metadata.score", "float", gte=0.5, lt=0.9)],
     {("c", 1, 0), ("e", 1, 0)}),
    ("datetime-range", ALL_COLLECTIONS, [cond("created_at", "datetime", gte="2024-02-01T00:00:00+00:00")],
     {("b", 2, 0), ("c", 1, 0), ("e", 1, 0)}),
    ("datetime-closed-range", ALL_COLLECTIONS,
     [cond("metadata.published", "datetime", gt="2001-05-01T00:00:00+00:00", lte="2015-01-01T00:00:00+00:00")],
     {("b", 2, 0), ("e", 1, 0)}),
    ("conditions-and-collections", ["c1", "c2"],
     [cond("kind", "keyword", any=["pdf", "docx", "html"]), cond("metadata.year", "integer", gte=2010)],
     {("c", 1, 0)}),
]  # fmt: skip


class VectorStoreContract:
    """What every VectorStore does. Subclasses define the `open_store` fixture and nothing else is needed."""

    @pytest.fixture
    def open_store(self, tmp_path: Path) -> Callable[[], VectorStore]:
        raise NotImplementedError("a concrete store class defines open_store")

    @pytest.fixture
    async def store(self, open_store: Callable[[], VectorStore]) -> AsyncIterator[VectorStore]:
        store = open_store()
        await store.ensure(DIM)
        yield store
        await store.close()  # a second close (after a test closed it) must be harmless: part of the contract

    @pytest.fixture
    async def seeded(self, store: VectorStore) -> VectorStore:
        for field, type_ in METADATA_INDEXES.items():
            await store.ensure_field_index(field, type_)
        await store.upsert(RECORDS)
        return store

    async def search(
        self,
        store: VectorStore,
        mode: SearchMode,
        dense: Sequence[float] = (1, 1, 1, 1),
        words: str = "river",
        collections: list[str] | None = None,
        conditions: list[Condition] | None = None,
        limit: int = 20,
        candidates: int = 20,
        rrf_k: int = 60,
    ) -> list[Hit]:
        spec = FilterSpec(collections=collections or ALL_COLLECTIONS, conditions=conditions or [])
        plan = SearchPlan(limit=limit, candidates=candidates, mode=mode, rrf_k=rrf_k)
        return await store.search(list(dense), BM25.encode_query(words), spec, plan)

    # ensure, dimension, close

    async def test_ensure_again_keeps_the_data(self, seeded: VectorStore) -> None:
        await seeded.ensure(DIM)
        assert await seeded.count(ChunkSelector()) == len(RECORDS)

    async def test_reopening_keeps_the_data_and_checks_the_dimension(
        self, seeded: VectorStore, open_store: Callable[[], VectorStore]
    ) -> None:
        await seeded.close()
        again = open_store()
        await again.ensure(DIM)
        try:
            assert await again.count(ChunkSelector()) == len(RECORDS)
            assert {key(h) for h in await self.search(again, "hybrid")} == VISIBLE
        finally:
            await again.close()
        other = open_store()
        try:
            with pytest.raises(RagError, match=r"4-dimensional.*makes 8"):
                await other.ensure(2 * DIM)
        finally:
            await other.close()

    async def test_close_twice_is_harmless(self, store: VectorStore) -> None:
        await store.close()
        await store.close()

    async def test_ping_an_open_store(self, seeded: VectorStore) -> None:
        await seeded.ping()  # raises when the store cannot be reached

    # the embedding cache (ingestion/reuse.py)

    async def test_dense_vectors_are_found_by_text_digest_and_model(self, store: VectorStore) -> None:
        made = [("d1", "m"), ("d1", "m"), ("d2", "m"), ("d3", "other")]
        records = [
            ChunkRecord(
                id=chunk_id("cache", 1, i),
                dense=[float(i + 1), 0.5, 0.25, 1.0],
                sparse=BM25.encode_document("word"),
                payload={
                    "collection": "c",
                    "document_id": "cache",
                    "version": 1,
                    "chunk_index": i,
                    "state": "retired",
                    "model_id": model,
                    "text_sha256": digest,
                },
            )
            for i, (digest, model) in enumerate(made)
        ]
        await store.upsert(records)
        found = await store.dense_by_text("m", ["d1", "d2", "d3", "missing"])
        assert set(found) == {"d1", "d2"}  # any state; only the model's own vectors

        def unit(v: Sequence[float]) -> np.ndarray:
            return np.array(v) / np.linalg.norm(v)  # cosine collections keep vectors normalised

        assert np.allclose(found["d2"], unit(records[2].dense), atol=1e-5)
        assert any(np.allclose(found["d1"], unit(r.dense), atol=1e-5) for r in records[:2])
        assert await store.dense_by_text("m", []) == {}
        assert set(await store.dense_by_text("other", ["d1", "d3"])) == {"d3"}

    # statistics (query drift, rag/drift.py)

    async def test_dense_vectors_are_sampled_from_a_selection(self, seeded: VectorStore) -> None:
        name = RECORDS[0].payload["collection"]
        mine = [r for r in RECORDS if r.payload["collection"] == name]
        sample = await seeded.sample_dense(ChunkSelector(collection=name), limit=1000)
        assert len(sample) == len(mine) and all(len(v) == DIM for v in sample)
        unit = [np.array(r.dense) / np.linalg.norm(r.dense) for r in mine]  # cosine collections normalise
        assert all(any(np.allclose(v, u, atol=1e-5) for u in unit) for v in sample)
        assert len(await seeded.sample_dense(ChunkSelector(collection=name), limit=1)) == 1
        assert await seeded.sample_dense(ChunkSelector(collection="no-such-collection"), limit=10) == []

    # upsert, count, set_state, delete

    async def test_a_fresh_store_is_empty(self, store: VectorStore) -> None:
        assert await store.count(ChunkSelector()) == 0
        for mode in MODES:
            assert await self.search(store, mode) == []

    async def test_upsert_of_nothing_is_a_no_op(self, seeded: VectorStore) -> None:
        await seeded.upsert([])
        assert await seeded.count(ChunkSelector()) == len(RECORDS)

    async def test_payload_comes_back_as_stored(self, seeded: VectorStore) -> None:
        hits = await self.search(seeded, "dense")
        assert {key(h) for h in hits} == VISIBLE
        for hit in hits:
            assert hit.chunk_id == BY_KEY[key(hit)].id
            assert hit.payload == BY_KEY[key(hit)].payload  # nested dicts, lists, None and non-ASCII intact

    async def test_upsert_replaces_a_record_with_the_same_id(self, seeded: VectorStore) -> None:
        old = BY_KEY[("a", 1, 0)]
        new_text = "Volcanoes pour lava into the river."
        replacement = old.model_copy(
            update={
                "dense": [0.0, 0.0, 0.0, 1.0],
                "sparse": BM25.encode_document(new_text),
                "payload": {**old.payload, "text": new_text},
            }
        )
        await seeded.upsert([replacement])
        assert await seeded.count(ChunkSelector()) == len(RECORDS)
        top = (await self.search(seeded, "dense", dense=[0, 0, 0, 1]))[0]
        assert top.chunk_id == old.id and top.payload["text"] == new_text
        assert top.score == pytest.approx(1.0, abs=1e-5)  # the new vector, not the old one
        assert [key(h) for h in await self.search(seeded, "sparse", words="volcanoes lava")] == [("a", 1, 0)]
        assert ("a", 1, 0) not in {key(h) for h in await self.search(seeded, "sparse", words="apples")}

    @pytest.mark.parametrize(
        ("selector", "expected"),
        [
            (ChunkSelector(), 7),
            (ChunkSelector(collection="c1"), 4),
            (ChunkSelector(document_id="a"), 2),
            (ChunkSelector(document_id="b", version=2), 1),
            (ChunkSelector(job_id="job-b-1"), 1),
            (ChunkSelector(state=ChunkState.active), 5),
            (ChunkSelector(state=ChunkState.staged), 1),
            (ChunkSelector(state=ChunkState.retired), 1),
            (ChunkSelector(collection="c2", state=ChunkState.active), 1),
            (ChunkSelector(document_id="zzz"), 0),
        ],
        ids=repr,
    )
    async def test_count_by_selector(self, seeded: VectorStore, selector: ChunkSelector, expected: int) -> None:
        assert await seeded.count(selector) == expected

    async def test_set_state_changes_only_the_selected_chunks(self, seeded: VectorStore) -> None:
        await seeded.set_state(ChunkSelector(document_id="b", version=1), ChunkState.active)
        assert await seeded.count(ChunkSelector(state=ChunkState.active)) == 6
        assert await seeded.count(ChunkSelector(document_id="b", state=ChunkState.active)) == 2
        await seeded.set_state(ChunkSelector(collection="c1"), ChunkState.retired)
        assert await seeded.count(ChunkSelector(collection="c1", state=ChunkState.retired)) == 4
        assert await seeded.count(ChunkSelector(state=ChunkState.active)) == 2  # c and e
        await seeded.set_state(ChunkSelector(document_id="zzz"), ChunkState.active)  # matches nothing: fine
        assert await seeded.count(ChunkSelector(state=ChunkState.active)) == 2
        hit = next(h for h in await self.search(seeded, "dense") if key(h) == ("c", 1, 0))
        assert hit.payload == BY_KEY[("c", 1, 0)].payload  # set_state writes `state` and nothing else

    async def test_delete_removes_only_the_selected_chunks(self, seeded: VectorStore) -> None:
        await seeded.delete(ChunkSelector(document_id="a", version=1))
        await seeded.delete(ChunkSelector(job_id="job-c-1"))
        await seeded.delete(ChunkSelector(collection="c3"))
        await seeded.delete(ChunkSelector(document_id="zzz"))  # matches nothing: fine
        assert await seeded.count(ChunkSelector()) == 3  # b1, b2, d
        assert await seeded.count(ChunkSelector(document_id="b")) == 2
        for mode in MODES:
            assert {key(h) for h in await self.search(seeded, mode)} == {("b", 2, 0)}, mode

    # search

    async def test_dense_search_ranks_by_cosine(self, seeded: VectorStore) -> None:
        query = np.array([1.0, 0.2, 0.0, 0.0])
        hits = await self.search(seeded, "dense", dense=query.tolist())
        assert {key(h) for h in hits} == VISIBLE  # every visible chunk is a dense candidate
        for rank, hit in enumerate(hits, start=1):
            vec = np.array(BY_KEY[key(hit)].dense)
            cosine = float(vec @ query / (np.linalg.norm(vec) * np.linalg.norm(query)))
            assert hit.score == pytest.approx(cosine, abs=1e-5)
            assert (hit.dense_rank, hit.dense_score) == (rank, hit.score)
            assert (hit.sparse_rank, hit.sparse_score) == (None, None)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    async def test_sparse_search_returns_the_chunks_sharing_a_term(self, seeded: VectorStore) -> None:
        hits = await self.search(seeded, "sparse", words="apples rockets")
        # b1 also says "rockets" but is retired.
        assert {key(h) for h in hits} == {("a", 1, 0), ("b", 2, 0)}
        for rank, hit in enumerate(hits, start=1):
            assert hit.score > 0
            assert (hit.sparse_rank, hit.sparse_score) == (rank, hit.score)
            assert (hit.dense_rank, hit.dense_score) == (None, None)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert await self.search(seeded, "sparse", words="submarine") == []

    @pytest.mark.parametrize("rrf_k", [60, 2])
    async def test_hybrid_fuses_the_stage_ranks(self, seeded: VectorStore, rrf_k: int) -> None:
        args: dict[str, Any] = {"dense": [0.1, 1.0, 0.0, 0.2], "words": "apples bees river", "rrf_k": rrf_k}
        hits = await self.search(seeded, "hybrid", **args)
        dense = {key(h): rank for rank, h in enumerate(await self.search(seeded, "dense", **args), start=1)}
        sparse = {key(h): rank for rank, h in enumerate(await self.search(seeded, "sparse", **args), start=1)}
        assert {key(h) for h in hits} == set(dense) | set(sparse) == VISIBLE
        for hit in hits:
            assert hit.dense_rank == dense.get(key(hit)) and hit.sparse_rank == sparse.get(key(hit))
            # Qdrant's RRF counts ranks from 0: a first place is worth 1/k.
            expected = sum(1 / (rrf_k + r - 1) for r in (hit.dense_rank, hit.sparse_rank) if r is not None)
            assert hit.score == pytest.approx(expected, rel=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    @pytest.mark.parametrize("mode", MODES)
    async def test_limit_keeps_the_best_hits(self, seeded: VectorStore, mode: SearchMode) -> None:
        every = await self.search(seeded, mode, dense=[1, 0.5, 0.2, 0], words="river apples rockets")
        top = await self.search(seeded, mode, dense=[1, 0.5, 0.2, 0], words="river apples rockets", limit=2)
        assert len(every) == len(VISIBLE)
        assert [h.chunk_id for h in top] == [h.chunk_id for h in every[:2]]

    async def test_candidates_bound_each_stage(self, seeded: VectorStore) -> None:
        args: dict[str, Any] = {"dense": [1, 0.5, 0.2, 0], "words": "bees rockets river"}
        hits = {mode: await self.search(seeded, mode, **args, candidates=2) for mode in MODES}
        stages: tuple[SearchMode, ...] = ("dense", "sparse")
        full = {mode: await self.search(seeded, mode, **args) for mode in stages}
        for mode in stages:
            assert [h.chunk_id for h in hits[mode]] == [h.chunk_id for h in full[mode][:2]], mode
        # Hybrid fuses the two stages' top 2: their union, nothing else.
        assert {key(h) for h in hits["hybrid"]} == {key(h) for h in hits["dense"] + hits["sparse"]}
        assert len({key(h) for h in hits["hybrid"]}) > 2  # the two stages disagree here, so the union is wider

    @pytest.mark.parametrize("mode", MODES)
    async def test_only_active_chunks_are_visible(self, seeded: VectorStore, mode: SearchMode) -> None:
        # The staged chunk d is the exact match of this query, the retired b1 the second best: neither may appear.
        hits = await self.search(seeded, mode, dense=[0, 0.1, 0, 1], words="staged river rockets stars")
        assert {key(h) for h in hits} == VISIBLE
        await seeded.set_state(ChunkSelector(document_id="d"), ChunkState.active)
        await seeded.set_state(ChunkSelector(document_id="a"), ChunkState.retired)
        hits = await self.search(seeded, mode, dense=[0, 0.1, 0, 1], words="staged river rockets stars")
        assert {key(h) for h in hits} == (VISIBLE | {("d", 1, 0)}) - {("a", 1, 0), ("a", 1, 1)}
        assert key(hits[0]) == ("d", 1, 0)

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize(
        ("collections", "conditions", "expected"),
        [case[1:] for case in FILTER_CASES],
        ids=[case[0] for case in FILTER_CASES],
    )
    async def test_filters(
        self,
        seeded: VectorStore,
        mode: SearchMode,
        collections: list[str],
        conditions: list[Condition],
        expected: set[Key],
    ) -> None:
        hits = await self.search(seeded, mode, collections=collections, conditions=conditions)
        assert {key(h) for h in hits} == expected
        assert len(hits) == len(expected)  # no chunk twice

    async def test_ensure_field_index_is_idempotent(self, seeded: VectorStore) -> None:
        for field, type_ in [*METADATA_INDEXES.items(), ("page", "integer"), ("kind", "keyword")]:
            await seeded.ensure_field_index(field, type_)
        hits = await self.search(seeded, "hybrid", conditions=[cond("metadata.lang", "keyword", eq="de")])
        assert [key(h) for h in hits] == [("e", 1, 0)]


    # generations (`rag reindex`): a collection's next generation is built beside the live one

    @staticmethod
    def generation_copy(record: ChunkRecord, generation: int) -> ChunkRecord:
        doc, version, index = record.payload["document_id"], record.payload["version"], record.payload["chunk_index"]
        text = f"{record.payload['text']} g{generation}"
        return record.model_copy(
            update={
                "id": chunk_id(f"{doc}-g{generation}", version, index),
                "payload": {**record.payload, "generation": generation, "text": text},
            }
        )

    async def with_generations(self, seeded: VectorStore) -> VectorStore:
        """The seeded chunks (no generation: indexed before generations), plus c1 rebuilt as generations 1 and 2
        and c2 as generation 1, in every state the originals have."""
        c1 = [r for r in RECORDS if r.payload["collection"] == "c1"]
        c2 = [r for r in RECORDS if r.payload["collection"] == "c2"]
        copies = [self.generation_copy(r, g) for g in (1, 2) for r in c1] + [self.generation_copy(r, 1) for r in c2]
        await seeded.upsert(copies)
        return seeded

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize(
        ("generations", "expected"),
        [
            ({}, None),  # no generations given: every generation, as before
            ({"c1": 0, "c2": 0, "c3": 0}, {0: {"c1", "c2", "c3"}}),
            ({"c1": 1, "c2": 0, "c3": 0}, {0: {"c2", "c3"}, 1: {"c1"}}),
            ({"c1": 2, "c2": 1}, {2: {"c1"}, 1: {"c2"}, None: {"c3"}}),  # c3 left out: seen whole
        ],
        ids=["none", "all-0", "c1-at-1", "mixed"],
    )
    async def test_a_search_sees_each_collection_at_its_live_generation(
        self,
        seeded: VectorStore,
        mode: SearchMode,
        generations: dict[str, int],
        expected: dict[int | None, set[str]] | None,
    ) -> None:
        store = await self.with_generations(seeded)
        spec = FilterSpec(collections=ALL_COLLECTIONS, generations=generations)
        plan = SearchPlan(limit=100, candidates=100, mode=mode)
        hits = await store.search([1, 1, 1, 1], BM25.encode_query("river"), spec, plan)
        seen = {(h.payload["collection"], h.payload.get("generation", 0), key(h)) for h in hits}
        if expected is None:
            assert len(hits) == len(VISIBLE) + 2 * 3 + 1  # the originals, c1's 3 active twice more, c2's 1 once more
            return
        want = set()
        for generation, names in expected.items():
            for k in VISIBLE:
                name = BY_KEY[k].payload["collection"]
                if name in names:
                    want.add((name, 0 if generation is None else generation, k))
        assert seen == want
        assert len(hits) == len(want)

    async def test_drop_generations_keeps_one_generation_of_one_collection(self, seeded: VectorStore) -> None:
        store = await self.with_generations(seeded)
        assert await store.count(ChunkSelector(collection="c1", generation=1)) == 4
        await store.drop_generations("c1", keep=2)
        assert await store.count(ChunkSelector(collection="c1")) == 4  # generation 2 only; the unnumbered ones too
        assert await store.count(ChunkSelector(collection="c1", generation=2)) == 4
        assert await store.count(ChunkSelector(collection="c2")) == 4  # 2 originals + 2 of generation 1, untouched
        await store.drop_generations("c2", keep=0)  # generation 0 numbered: the unnumbered are not kept
        assert await store.count(ChunkSelector(collection="c2")) == 0
        assert await store.count(ChunkSelector(collection="c3")) == 1
        await store.drop_generations("nope", keep=1)  # matches nothing: fine
        spec = FilterSpec(collections=["c1"], generations={"c1": 2})
        hits = await store.search([1, 1, 1, 1], BM25.encode_query("river"), spec, SearchPlan(20, 20))
        assert {key(h) for h in hits} == {k for k in VISIBLE if k[0] in ("a", "b")}
        assert {h.payload["generation"] for h in hits} == {2}


class TestQdrantEdgeStore(VectorStoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> Callable[[], VectorStore]:
        from retrieval.stores.qdrant_edge import QdrantEdgeStore

        return lambda: QdrantEdgeStore(tmp_path / "edge")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestQdrantServerStore(VectorStoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> Callable[[], VectorStore]:
        from qdrant_client import AsyncQdrantClient

        from retrieval.stores.qdrant_server import QdrantServerStore

        # `path=`, not ":memory:": the data outlives a client, so the reopening test runs here too.
        def open_() -> VectorStore:
            client = AsyncQdrantClient(path=str(tmp_path / "qdrant-local"))
            return QdrantServerStore("unused", "chunks", None, 5, client=client)

        return open_

    async def test_an_unreachable_server_is_a_transient_error(self) -> None:
        """Only a store behind a network can be unreachable; the protocol says how it reports that."""
        from retrieval.stores.qdrant_server import QdrantServerStore

        store = QdrantServerStore(f"http://127.0.0.1:{_closed_port()}", "chunks", None, 5)
        try:
            with pytest.raises(TransientError):
                await store.ping()
            with pytest.raises(TransientError):
                await store.ensure(DIM)
        finally:
            await store.close()


class TestRemoteStore(VectorStoreContract):
    """The client of a store owner (`rag store`), which serves a Qdrant Edge store over HTTP on loopback."""

    @pytest.fixture
    def open_store(self, tmp_path: Path) -> Iterator[Callable[[], VectorStore]]:
        from retrieval.stores.remote import RemoteStore
        from tests.support.store_owner import served_edge_store

        # One owner for the test: closing a client and opening another reaches the same store, as a restarted
        # worker process does.
        with served_edge_store(tmp_path / "edge") as url:
            yield lambda: RemoteStore(url, 5)

    async def test_an_unreachable_owner_is_a_transient_error(self) -> None:
        from retrieval.stores.remote import RemoteStore

        store = RemoteStore(f"http://127.0.0.1:{_closed_port()}", 5)
        try:
            with pytest.raises(TransientError, match=r"store owner .* is unavailable"):
                await store.ping()
            with pytest.raises(TransientError):
                await store.ensure(DIM)
        finally:
            await store.close()

    async def test_calls_before_ensure_are_refused_with_a_reason(self, open_store: Callable[[], VectorStore]) -> None:
        store = open_store()
        try:
            await store.ping()  # the owner is up even with nothing opened
            with pytest.raises(RagError, match="ensure") as caught:
                await store.count(ChunkSelector())
            assert not isinstance(caught.value, TransientError)  # a client bug, not an outage to retry
        finally:
            await store.close()

    async def test_a_url_that_is_no_store_owner_names_the_setting(self) -> None:
        from retrieval.stores.remote import RemoteStore
        from tests.support.chat_server import ChatServer

        with ChatServer(["not a store"]) as other:  # an HTTP server that is not a store owner: 404 for our paths
            store = RemoteStore(other.base_url.removesuffix("/v1"), 5)
            try:
                with pytest.raises(RagError, match="RAG_QDRANT__STORE_URL") as caught:
                    await store.ensure(DIM)
                assert not isinstance(caught.value, TransientError)
            finally:
                await store.close()
