"""The two stores rank alike: the same records and the same queries give the same hits in the same order.

300 SciFact abstracts (../shared/data/scifact, the abstracts the first train claims cite, then the corpus in file
order; nothing here is tuned, so the train/test rule is not at stake), embedded with the bundled all-MiniLM-L6-v2
and encoded with the real BM25 encoder, go into Qdrant Edge and into the server store on qdrant-client's local
engine, with collections, states and metadata to filter on. SciFact train claims are the queries, in dense,
sparse and hybrid mode, with and without filters.

Ties. Two hits with equal scores (BM25 gives equal scores to equally long texts holding the same query term once)
come in whichever order each engine keeps them, so `assert_same_ranking` lets tied hits swap places and, at the
cut of a full page, lets the tied hits differ; every other difference in membership, order or score fails. In
hybrid mode a tie inside a stage matters more: the engines give the tied hits different stage ranks, hence
different fused scores, and deep in a BM25 ranking such ties are common. So hybrid is checked in three parts:
each store's page is exactly the RRF fusion of its own full stage rankings (`assert_fused`: ranks, scores, order
and membership); the stage rankings agree across the stores up to ties; and wherever the stage rankings are
identical, the fused pages are compared directly, which must happen at least once per filter.

After deletes the stores really differ (see the strict xfail at the end): Edge keeps deleted chunks in its BM25
statistics. Dense rankings and the set of sparse matches still agree, and are checked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kernel.filters import Condition, FilterSpec
from kernel.protocols import SearchMode, SearchPlan, VectorStore
from kernel.types import ChunkRecord, ChunkSelector, ChunkState, Hit, SparseVector
from retrieval.sparse import Bm25Encoder
from tests.conftest import SHARED

SCIFACT = SHARED / "scifact"
N_RECORDS = 300
N_QUERIES = 15
TEXT_CHARS = 700  # title and the start of the abstract: the model reads 256 word pieces at most anyway
LIMIT, CANDIDATES, RRF_K = 10, 50, 60
# Edge computes in float32, the local engine cosines in float64: they differ around 1e-7.
TOL = 1e-5
COLLECTIONS = ["c0", "c1", "c2"]


@dataclass(frozen=True)
class Query:
    id: str
    dense: list[float]
    sparse: SparseVector


@dataclass(frozen=True)
class Corpus:
    records: list[ChunkRecord]
    queries: list[Query]


def _states(i: int) -> ChunkState:
    return ChunkState.staged if i % 10 == 0 else ChunkState.retired if i % 10 == 5 else ChunkState.active


def _record(i: int, doc_id: str, text: str, dense: list[float], sparse: SparseVector) -> ChunkRecord:
    day = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=i)
    return ChunkRecord(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"scifact/{doc_id}")),
        dense=dense,
        sparse=sparse,
        payload={
            "collection": COLLECTIONS[i % 3],
            "document_id": doc_id,
            "version": 1,
            "chunk_index": 0,
            "text": text,
            "page": i % 7 + 1,
            "filename": f"{doc_id}.txt",
            "kind": "txt",
            "job_id": f"job-{i % 5}",
            # Written staged like the indexer does; set_state below activates or retires them.
            "state": ChunkState.staged.value,
            "created_at": day.isoformat(),
            "metadata": {"year": 1990 + i % 30, "lang": ["en", "fr", "de", "es"][i % 4], "published": day.isoformat()},
        },
    )


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    from ingestion.embed import SentenceTransformerEmbedder

    with (SCIFACT / "qrels" / "train.tsv").open() as fh:
        qrels = [line.rstrip("\n").split("\t")[:2] for line in list(fh)[1:]]
    query_ids = list(dict.fromkeys(q for q, _ in qrels))[:N_QUERIES]
    cited = [d for q, d in qrels if q in query_ids]
    with (SCIFACT / "corpus.jsonl").open() as fh:
        rows = {r["_id"]: r for r in map(json.loads, fh)}
    doc_ids = list(dict.fromkeys([*cited, *rows]))[:N_RECORDS]
    texts = [f"{rows[d]['title']}. {rows[d]['text']}"[:TEXT_CHARS] for d in doc_ids]
    with (SCIFACT / "queries.jsonl").open() as fh:
        claims = {r["_id"]: r["text"] for r in map(json.loads, fh)}

    embedder = SentenceTransformerEmbedder(None)
    bm25 = Bm25Encoder()
    vectors = embedder.embed_documents(texts + [claims[q] for q in query_ids])
    records = [
        _record(i, d, t, v, bm25.encode_document(t))
        for i, (d, t, v) in enumerate(zip(doc_ids, texts, vectors[: len(texts)], strict=True))
    ]
    queries = [Query(q, v, bm25.encode_query(claims[q])) for q, v in zip(query_ids, vectors[len(texts) :], strict=True)]
    return Corpus(records, queries)


def _open_edge(where: Path) -> VectorStore:
    from retrieval.stores.qdrant_edge import QdrantEdgeStore

    return QdrantEdgeStore(where / "edge")


def _open_server(where: Path) -> VectorStore:
    from qdrant_client import AsyncQdrantClient

    from retrieval.stores.qdrant_server import QdrantServerStore

    return QdrantServerStore("unused", "chunks", None, 5, client=AsyncQdrantClient(path=str(where / "local")))


async def _fill(store: VectorStore, records: Sequence[ChunkRecord]) -> None:
    await store.ensure(len(records[0].dense))
    await store.ensure_field_index("metadata.year", "integer")
    await store.ensure_field_index("metadata.lang", "keyword")
    await store.ensure_field_index("metadata.published", "datetime")
    for start in range(0, len(records), 64):  # in batches, as the indexer writes
        await store.upsert(records[start : start + 64])
    for i, r in enumerate(records):
        if (state := _states(i)) is not ChunkState.staged:
            await store.set_state(ChunkSelector(document_id=r.payload["document_id"]), state)


async def _pair(corpus: Corpus, where: Path) -> tuple[VectorStore, VectorStore]:
    edge, server = _open_edge(where), _open_server(where)
    for store in (edge, server):
        await _fill(store, corpus.records)
    return edge, server


@pytest.fixture(scope="module")
async def stores(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[VectorStore, ...]]:
    pair = await _pair(corpus, tmp_path_factory.mktemp("congruence"))
    yield pair
    for store in pair:
        await store.close()


FILTERS: dict[str, FilterSpec] = {
    "no-filter": FilterSpec(collections=COLLECTIONS),
    "one-collection": FilterSpec(collections=["c1"]),
    "keyword-and-integer": FilterSpec(
        collections=COLLECTIONS,
        conditions=[
            Condition(field="metadata.lang", type="keyword", any=["en", "de"]),
            Condition(field="metadata.year", type="integer", gte=2000, lt=2015),
        ],
    ),
    "datetime-and-page": FilterSpec(
        collections=["c0", "c2"],
        conditions=[
            Condition(field="metadata.published", type="datetime", lt="2000-06-01T00:00:00+00:00"),
            Condition(field="page", type="integer", gte=3),
        ],
    ),
}


def _close(x: float, y: float, tol: float) -> bool:
    return abs(x - y) <= tol * max(1.0, abs(x), abs(y))


def assert_same_ranking(a: list[Hit], b: list[Hit], *, limit: int, tol: float, what: str) -> None:
    """The same hits in the same order with the same scores (within `tol`), except that tied hits may swap and, at
    the cut of a full page, tied hits may differ. Ids are what a caller sees, payloads what it reads."""
    assert len(a) == len(b), f"{what}: {len(a)} hits vs {len(b)}"
    for i, (x, y) in enumerate(zip(a, b, strict=True), start=1):
        assert _close(x.score, y.score, tol), f"{what}: score at position {i}: {x.score} vs {y.score}"
    in_a, in_b = {h.chunk_id: h for h in a}, {h.chunk_id: h for h in b}
    for cid in in_a.keys() & in_b.keys():
        # With the position-wise check above, an equal score means both positions lie in one run of tied scores.
        assert _close(in_a[cid].score, in_b[cid].score, tol), f"{what}: {cid}: {in_a[cid].score} vs {in_b[cid].score}"
        assert in_a[cid].payload == in_b[cid].payload, f"{what}: payload of {cid}"
    for cid in in_a.keys() ^ in_b.keys():
        hit = in_a.get(cid) or in_b[cid]
        assert len(a) == limit and _close(hit.score, a[-1].score, tol), (
            f"{what}: {cid} (score {hit.score}) is in one store only and is not tied at the cut ({a[-1].score})"
        )


def rrf(ranks: Sequence[int | None]) -> float:
    """Reciprocal rank fusion as Qdrant computes it: ranks count from 0, so a first place is worth 1/k."""
    return sum(1 / (RRF_K + r - 1) for r in ranks if r is not None)


def assert_fused(hybrid: list[Hit], dense: list[Hit], sparse: list[Hit], what: str) -> None:
    """A store's hybrid page is exactly the RRF fusion of its own full stage rankings: each hit's stage ranks and
    fused score, the order, and which hits made the page (tied hits may differ at the cut)."""
    dense_rank = {h.chunk_id: r for r, h in enumerate(dense, start=1)}
    sparse_rank = {h.chunk_id: r for r, h in enumerate(sparse, start=1)}
    expected = {cid: rrf([dense_rank.get(cid), sparse_rank.get(cid)]) for cid in dense_rank.keys() | sparse_rank.keys()}
    for hit in hybrid:
        assert (hit.dense_rank, hit.sparse_rank) == (dense_rank.get(hit.chunk_id), sparse_rank.get(hit.chunk_id)), what
        assert _close(hit.score, expected[hit.chunk_id], 1e-6), f"{what}: {hit.chunk_id}: {hit.score} is not its RRF"
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True), what
    assert len(hybrid) == min(LIMIT, len(expected)), what
    cut = hybrid[-1].score
    missing = [cid for cid, score in expected.items() if score > cut and not _close(score, cut, 1e-6)]
    assert set(missing) <= {h.chunk_id for h in hybrid}, f"{what}: fused better than the cut but not returned"


async def _search(
    store: VectorStore, q: Query, spec: FilterSpec, mode: SearchMode, limit: int = LIMIT, candidates: int = CANDIDATES
) -> list[Hit]:
    return await store.search(q.dense, q.sparse, spec, SearchPlan(limit, candidates, mode, RRF_K))


async def test_the_stores_hold_the_same_records(stores: tuple[VectorStore, ...], corpus: Corpus) -> None:
    edge, server = stores
    for selector in [
        ChunkSelector(),
        *(ChunkSelector(state=s) for s in ChunkState),
        *(ChunkSelector(collection=c) for c in COLLECTIONS),
        ChunkSelector(job_id="job-3", state=ChunkState.active),
    ]:
        assert await edge.count(selector) == await server.count(selector), selector
    assert await edge.count(ChunkSelector()) == len(corpus.records)


@pytest.mark.parametrize("spec_name", FILTERS)
@pytest.mark.parametrize("mode", ["dense", "sparse"])
async def test_single_stage_rankings_agree(
    stores: tuple[VectorStore, ...], corpus: Corpus, mode: SearchMode, spec_name: str
) -> None:
    edge, server = stores
    spec = FILTERS[spec_name]
    for q in corpus.queries:
        a, b = await _search(edge, q, spec, mode), await _search(server, q, spec, mode)
        assert a, f"query {q.id} found nothing: the comparison would be empty"
        assert_same_ranking(a, b, limit=LIMIT, tol=TOL, what=f"{mode} {spec_name} query {q.id}")


@pytest.mark.parametrize("spec_name", FILTERS)
async def test_hybrid_rankings_agree(stores: tuple[VectorStore, ...], corpus: Corpus, spec_name: str) -> None:
    spec = FILTERS[spec_name]
    strict = 0
    for q in corpus.queries:
        what = f"hybrid {spec_name} query {q.id}"
        stages: list[tuple[list[Hit], list[Hit]]] = []
        fused: list[list[Hit]] = []
        for store in stores:
            dense = await _search(store, q, spec, "dense", CANDIDATES)
            sparse = await _search(store, q, spec, "sparse", CANDIDATES)
            hybrid = await _search(store, q, spec, "hybrid")
            assert hybrid, f"{what} found nothing"
            assert_fused(hybrid, dense, sparse, what)
            stages.append((dense, sparse))
            fused.append(hybrid)
        (dense_a, sparse_a), (dense_b, sparse_b) = stages
        assert_same_ranking(dense_a, dense_b, limit=CANDIDATES, tol=TOL, what=f"{what}, dense stage")
        assert_same_ranking(sparse_a, sparse_b, limit=CANDIDATES, tol=TOL, what=f"{what}, sparse stage")
        if [h.chunk_id for h in dense_a + sparse_a] == [h.chunk_id for h in dense_b + sparse_b]:
            # Same stage ranks, so the same fused scores: only ties of the fusion itself may swap.
            assert_same_ranking(fused[0], fused[1], limit=LIMIT, tol=1e-6, what=what)
            strict += 1
    # Stage ties are common deep in a BM25 ranking, but not universal: the direct comparison must have run.
    assert strict > 0, "no query had tie-free stage rankings: the fused pages were never compared directly"


@pytest.fixture
async def deleted_pair(corpus: Corpus, tmp_path: Path) -> AsyncIterator[tuple[VectorStore, ...]]:
    """Both stores after deleting a tenth of the documents (as purging old versions does)."""
    pair = await _pair(corpus, tmp_path)
    for i, r in enumerate(corpus.records):
        if i % 10 == 1:
            for store in pair:
                await store.delete(ChunkSelector(document_id=r.payload["document_id"]))
    yield pair
    for store in pair:
        await store.close()


async def test_after_deletes_dense_rankings_and_sparse_matches_agree(
    deleted_pair: tuple[VectorStore, ...], corpus: Corpus
) -> None:
    edge, server = deleted_pair
    assert await edge.count(ChunkSelector()) == await server.count(ChunkSelector()) == len(corpus.records) - 30
    for spec_name, spec in FILTERS.items():
        for q in corpus.queries:
            what = f"{spec_name} query {q.id}, after deletes"
            a, b = await _search(edge, q, spec, "dense"), await _search(server, q, spec, "dense")
            assert_same_ranking(a, b, limit=LIMIT, tol=TOL, what=f"dense {what}")
            # Which chunks match the query's terms does not depend on the term statistics.
            every = len(corpus.records)
            a, b = [await _search(s, q, spec, "sparse", every, every) for s in deleted_pair]
            assert {h.chunk_id for h in a} == {h.chunk_id for h in b}, f"sparse {what}"


# A real divergence, kept visible: strict, so it fails (and gets removed) once the engines agree. Qdrant's engine
# (Edge) keeps a deleted point in its BM25 IDF statistics (posting lists stay as they are until a segment is
# rebuilt; Edge's optimize() did not rebuild them here), while qdrant-client's local engine drops it on delete.
# Checked by hand: Edge after deleting 10 of 60 documents scores exactly like a store that still holds the 10
# elsewhere. Sparse and hybrid scores, and sometimes their order, then differ between the stores.
@pytest.mark.xfail(strict=True, raises=AssertionError, reason="after deletes, Edge's IDF still counts deleted chunks")
async def test_after_deletes_sparse_rankings_agree(deleted_pair: tuple[VectorStore, ...], corpus: Corpus) -> None:
    edge, server = deleted_pair
    for q in corpus.queries:
        a, b = [await _search(s, q, FILTERS["no-filter"], "sparse") for s in (edge, server)]
        assert_same_ranking(a, b, limit=LIMIT, tol=TOL, what=f"sparse query {q.id}, after deletes")
