"""The Reranker contract: one suite of test methods that every reranker runs.

- NoReranker; ScoreFusionReranker (the default weight, 0.4);
- CrossEncoderReranker on a cross-encoder built from the bundled all-MiniLM-L6-v2 directory: sentence-transformers
  turns a bi-encoder checkpoint into a CrossEncoder (BertForSequenceClassification, MiniLM's encoder weights and a
  new one-logit head), offline. No trained cross-encoder ships in a package here, and the contract needs none:
  the head is random (seeded), so its scores say nothing about relevance, but they are real model outputs;
- CheckerReranker: the committed support checker (evals/models/checker) blended with score fusion.

The hits come from a real hybrid search (Qdrant Edge, MiniLM, BM25), so some carry no sparse score, as in service.
A reranker returns some of the hits it was given, at most `top_k`, each unchanged except its scores, in its own
order; the same call gives the same answer.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kernel.filters import FilterSpec
from kernel.protocols import SearchPlan
from kernel.types import ChunkRecord, Hit
from retrieval.rerank import Reranker

QUERY = "What is the capital of France?"
PASSAGES = [
    "Paris is the capital and most populous city of France.",
    "Lyon is a large city in France, known for its cuisine.",
    "Berlin is the capital of Germany and its largest city.",
    "The Seine flows through Paris before reaching the English Channel.",
    "Bananas are yellow fruit that grow in tropical regions.",
    "Canberra was chosen as the capital of Australia in 1908.",
    "France is a country in Western Europe with overseas regions.",
    "The Eiffel Tower was completed in 1889 for the World's Fair.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "Madrid is the capital of Spain.",
    "A capital letter starts every sentence in English.",
    "Rockets burn fuel and oxidiser to produce thrust.",
]
TOP_KS = [0, 1, 3, len(PASSAGES), len(PASSAGES) + 5]
# What a reranker may change; everything else a hit carries (payload, stage ranks and scores) is provenance.
SCORES = {"score", "rerank_score"}


@pytest.fixture(scope="module")
async def hits(tmp_path_factory: pytest.TempPathFactory) -> list[Hit]:
    from ingestion.embed import SentenceTransformerEmbedder
    from retrieval.sparse import Bm25Encoder
    from retrieval.stores.qdrant_edge import QdrantEdgeStore

    embedder, bm25 = SentenceTransformerEmbedder(None), Bm25Encoder()
    store = QdrantEdgeStore(tmp_path_factory.mktemp("rerank") / "edge")
    await store.ensure(embedder.dim)
    records = [
        ChunkRecord(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")),
            dense=vec,
            sparse=bm25.encode_document(text),
            payload={"collection": "c", "state": "active", "document_id": f"p{i}", "version": 1, "text": text},
        )
        for i, (text, vec) in enumerate(zip(PASSAGES, embedder.embed_documents(PASSAGES), strict=True))
    ]
    await store.upsert(records)
    plan = SearchPlan(limit=len(PASSAGES), candidates=len(PASSAGES))
    spec = FilterSpec(collections=["c"])
    found = await store.search(embedder.embed_query(QUERY), bm25.encode_query(QUERY), spec, plan)
    await store.close()
    assert len(found) == len(PASSAGES)
    assert any(h.sparse_score is None for h in found)  # hits only the dense stage found: the awkward case
    return found


def provenance(hit: Hit) -> dict:
    return hit.model_dump(exclude=SCORES)


class RerankerContract:
    """What every Reranker does. Subclasses define the `reranker` fixture."""

    @pytest.fixture
    def reranker(self) -> Reranker:
        raise NotImplementedError("a concrete reranker class defines reranker")

    @pytest.fixture
    def expected_name(self) -> str:
        raise NotImplementedError("a concrete reranker class defines expected_name")

    async def test_name_says_what_it_does(self, reranker: Reranker, expected_name: str, hits: list[Hit]) -> None:
        assert reranker.name == expected_name
        assert reranker.name.split(":")[0] in ("none", "score_fusion", "cross_encoder", "checker")  # RAG_RERANK__KIND
        # The search skips a reranker named "none" (retrieval/search.py): only one that reorders nothing may say so.
        out = await reranker.rerank(QUERY, hits, len(hits))
        assert (reranker.name == "none") == all(h.rerank_score is None for h in out)

    @pytest.mark.parametrize("top_k", TOP_KS)
    async def test_returns_at_most_top_k_of_the_given_hits(
        self, reranker: Reranker, hits: list[Hit], top_k: int
    ) -> None:
        out = await reranker.rerank(QUERY, hits, top_k)
        ids = [h.chunk_id for h in out]
        assert len(ids) == len(set(ids)), "a hit came back twice"
        assert set(ids) <= {h.chunk_id for h in hits}, "a hit came back that was not given"
        # None of these rerankers drops a candidate: with room for all, all come back (a permutation).
        assert len(out) == min(top_k, len(hits))

    async def test_each_hit_is_unchanged_except_its_scores(self, reranker: Reranker, hits: list[Hit]) -> None:
        given = {h.chunk_id: provenance(h) for h in hits}
        for hit in await reranker.rerank(QUERY, hits, len(hits)):
            assert provenance(hit) == given[hit.chunk_id]

    async def test_the_given_hits_are_not_modified(self, reranker: Reranker, hits: list[Hit]) -> None:
        before = [h.model_dump() for h in hits]
        await reranker.rerank(QUERY, hits, 3)
        assert [h.model_dump() for h in hits] == before

    async def test_order_is_by_rerank_score_or_else_the_given_order(self, reranker: Reranker, hits: list[Hit]) -> None:
        out = await reranker.rerank(QUERY, hits, len(hits))
        scored = [h.rerank_score is not None for h in out]
        assert all(scored) or not any(scored), "rerank scores on some hits only"
        if all(scored):
            assert [h.rerank_score for h in out] == sorted((h.rerank_score or 0.0 for h in out), reverse=True)
        else:
            assert [h.chunk_id for h in out] == [h.chunk_id for h in hits]

    @pytest.mark.parametrize("top_k", [1, 3, 7])
    async def test_top_k_cuts_the_full_ranking(self, reranker: Reranker, hits: list[Hit], top_k: int) -> None:
        full = await reranker.rerank(QUERY, hits, len(hits))
        assert [h.model_dump() for h in await reranker.rerank(QUERY, hits, top_k)] == [
            h.model_dump() for h in full[:top_k]
        ]

    async def test_deterministic(self, reranker: Reranker, hits: list[Hit]) -> None:
        first = await reranker.rerank(QUERY, hits, len(hits))
        second = await reranker.rerank(QUERY, hits, len(hits))
        assert [h.model_dump() for h in first] == [h.model_dump() for h in second]

    async def test_no_hits_gives_no_hits(self, reranker: Reranker) -> None:
        assert await reranker.rerank(QUERY, [], 5) == []


class TestNoReranker(RerankerContract):
    @pytest.fixture
    def expected_name(self) -> str:
        return "none"

    @pytest.fixture
    def reranker(self) -> Reranker:
        from retrieval.rerank import NoReranker

        return NoReranker()


class TestScoreFusionReranker(RerankerContract):
    @pytest.fixture
    def expected_name(self) -> str:
        return "score_fusion:0.4"

    @pytest.fixture
    def reranker(self) -> Reranker:
        from retrieval.rerank import ScoreFusionReranker

        return ScoreFusionReranker(0.4)

    async def test_the_answer_passage_leads(self, reranker: Reranker, hits: list[Hit]) -> None:
        out = await reranker.rerank(QUERY, hits, 1)
        assert out[0].payload["text"] == PASSAGES[0]


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CrossEncoder made from the bundled MiniLM checkpoint and saved, for CrossEncoderReranker to load by path."""
    import torch
    from sentence_transformers import CrossEncoder

    from ingestion.embed import bundled_model_path

    torch.manual_seed(0)  # the new classification head is drawn at random: the same one every run
    model = CrossEncoder(str(bundled_model_path()), num_labels=1, device="cpu", local_files_only=True)
    where = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(where))
    return where


class TestCrossEncoderReranker(RerankerContract):
    @pytest.fixture
    def expected_name(self, cross_encoder_dir: Path) -> str:
        return f"cross_encoder:{cross_encoder_dir}"

    @pytest.fixture
    def reranker(self, cross_encoder_dir: Path) -> Reranker:
        from retrieval.rerank import CrossEncoderReranker

        return CrossEncoderReranker(str(cross_encoder_dir))

    async def test_scores_come_from_the_model(self, reranker: Reranker, hits: list[Hit]) -> None:
        # The head is untrained, so no order is expected; but each passage gets its own score.
        out = await reranker.rerank(QUERY, hits, len(hits))
        assert len({h.rerank_score for h in out}) == len(out)


class TestCheckerReranker(RerankerContract):
    @pytest.fixture
    def expected_name(self) -> str:
        return "checker:0.5+score_fusion:0.4"

    @pytest.fixture
    def reranker(self) -> Reranker:
        from evals.checker import load_checker
        from retrieval.rerank import CheckerReranker, ScoreFusionReranker

        checker = load_checker()
        assert checker is not None, "the support checker is committed in evals/models/checker"
        return CheckerReranker(checker, ScoreFusionReranker(0.4), 0.5)

    async def test_the_answer_passage_leads(self, reranker: Reranker, hits: list[Hit]) -> None:
        out = await reranker.rerank(QUERY, hits, 1)
        assert out[0].payload["text"] == PASSAGES[0]
