from __future__ import annotations

import pytest

from kernel.errors import InvalidInput
from kernel.types import Context, Hit
from rag.pipeline import validate_citations
from rag.prompts.registry import load_prompt
from retrieval.filters import BUILTIN_FIELDS, parse_filters
from retrieval.rerank import ScoreFusionReranker
from retrieval.search import collapse_duplicates


def ctx(n: int) -> Context:
    return Context(n=n, chunk_id=f"c{n}", document_id="d", version=1, filename="f", text="t", score=1.0)


def test_invalid_citation_markers_are_removed_and_counted():
    text, cited, removed = validate_citations("A [1]. B [7]. C [2, 9]. D [2].", [ctx(1), ctx(2)])
    assert text == "A [1]. B. C [2]. D [2]."
    assert cited == [1, 2] and removed == 2


def test_prompt_is_versioned_by_content(tmp_path):
    p = load_prompt("grounded_answer")
    assert p.id == "grounded_answer" and len(p.version) == 12
    user = p.user("Why?", [ctx(1)])
    assert "[1] f" in user and "Question: Why?" in user
    (tmp_path / "x.toml").write_text('id = "x"\nsystem = "s"\nuser = "{sources} {question}"\nsource = "{n}"\n')
    v1 = load_prompt("x", tmp_path).version
    (tmp_path / "x.toml").write_text('id = "x"\nsystem = "s2"\nuser = "{sources} {question}"\nsource = "{n}"\n')
    assert load_prompt("x", tmp_path).version != v1
    with pytest.raises(InvalidInput, match="unknown prompt"):
        load_prompt("../etc/passwd")


def test_filters_validate_fields_and_operators():
    allowed = {**BUILTIN_FIELDS, "metadata.year": "integer"}
    [c] = parse_filters({"metadata.year": {"gte": 2000, "lt": 2010}}, allowed)
    assert (c.gte, c.lt) == (2000, 2010)
    [c] = parse_filters({"created_at": {"gte": "2024-01-01"}}, allowed)
    assert c.gte.startswith("2024-01-01T00:00:00")
    for bad, needle in [
        ({"metadata.x": 1}, "not an indexed field"),
        ({"page": {"near": 1}}, "unknown operator"),
        ({"page": 1.5}, "whole number"),
        ({"kind": {"any": []}}, "non-empty list"),
        ({"page": True}, "expected a number"),
    ]:
        with pytest.raises(InvalidInput, match=needle):
            parse_filters(bad, allowed)


def hit(i: int, text: str, dense: float | None, sparse: float | None) -> Hit:
    return Hit(chunk_id=str(i), score=1.0 / (i + 1), dense_score=dense, sparse_score=sparse, payload={"text": text})


def test_collapse_keeps_the_best_of_near_duplicates():
    hits = [
        hit(0, "the pump is rated at 400 litres per minute", 1, 1),
        hit(1, "the pump is rated at 400 litres per minute.", 1, 1),
        hit(2, "a different sentence about valves entirely", 1, 1),
    ]
    assert [h.chunk_id for h in collapse_duplicates(hits, 0.8)] == ["0", "2"]


async def test_score_fusion_reorders_by_weighted_scores():
    hits = [hit(0, "a", 0.2, 9.0), hit(1, "b", 0.9, 1.0), hit(2, "c", 0.5, None)]
    dense_heavy = await ScoreFusionReranker(0.9).rerank("q", hits, 3)
    sparse_heavy = await ScoreFusionReranker(0.1).rerank("q", hits, 3)
    assert dense_heavy[0].chunk_id == "1" and sparse_heavy[0].chunk_id == "0"
    assert all(h.rerank_score is not None for h in dense_heavy)


async def test_cross_encoder_reranker_loads_a_local_model(tmp_path):
    """No cross-encoder weights exist offline: build one from the bundled MiniLM (untrained head) to test loading
    from a local directory and the reranking plumbing."""
    from sentence_transformers import CrossEncoder

    from ingestion.embed import bundled_model_path
    from retrieval.rerank import CrossEncoderReranker

    CrossEncoder(str(bundled_model_path()), num_labels=1, local_files_only=True).save(str(tmp_path / "ce"))
    reranker = CrossEncoderReranker(str(tmp_path / "ce"))
    hits = [hit(i, f"text number {i}", 0.5, 1.0) for i in range(4)]
    out = await reranker.rerank("a question", hits, 2)
    assert len(out) == 2 and all(h.rerank_score is not None for h in out)
    assert out[0].rerank_score >= out[1].rerank_score
    assert reranker.name.startswith("cross_encoder:")


def test_filter_values_are_normalised_for_the_stores():
    allowed = {**BUILTIN_FIELDS, "metadata.score": "float"}
    [page] = parse_filters({"page": {"any": [1, 2.0]}}, allowed)
    assert page.any == [1, 2] and all(type(v) is int for v in page.any)
    [name] = parse_filters({"filename": {"any": ["a.pdf", 3]}}, allowed)
    assert name.any == ["a.pdf", "3"]
    [day] = parse_filters({"created_at": "2024-05-01"}, allowed)
    assert day.eq is None and day.gte == day.lte == "2024-05-01T00:00:00"
    [score] = parse_filters({"metadata.score": 1}, allowed)
    assert score.gte == score.lte == 1.0
    with pytest.raises(InvalidInput, match="out of range"):
        parse_filters({"page": 10**30}, allowed)


def test_extractive_answer_drops_the_documents_own_reference_markers():
    from rag.generation.extractive import Candidate, ExtractiveGenerator

    gen = ExtractiveGenerator(embedder=None)  # compose() needs no model
    text, _ = gen.compose(
        [Candidate(n=1, text="Levels rose as shown previously [2, 3].", score=1, cosine=1, overlap=1)]
    )
    assert text == "Levels rose as shown previously [1]."


def _contexts(n: int) -> list[Context]:
    from kernel.types import Context

    return [
        Context(
            n=i,
            chunk_id=f"c{i}",
            document_id="d",
            version=1,
            filename="f",
            page=None,
            section=None,
            text="t",
            score=1.0,
        )
        for i in range(1, n + 1)
    ]


def test_citation_gate_holds_tokens_until_a_valid_citation_then_streams() -> None:
    from rag.pipeline import CitationGate

    gate = CitationGate(_contexts(2))
    shown = [
        gate.feed(t) for t in ["The bridge ", "opened in 1937 ", "[", "9", "] and ", "[", "1", "]", " later", " [7]."]
    ]
    # Nothing before the first valid marker; "[9]" (no such context) is dropped once complete.
    assert shown[:7] == ["", "", "", "", "", "", ""]
    assert "".join(shown) + gate.finish() == "The bridge opened in 1937  and [1] later ."
    assert gate.opened


def test_citation_gate_shows_nothing_of_an_answer_without_citations() -> None:
    from rag.pipeline import CitationGate

    gate = CitationGate(_contexts(1))
    assert [gate.feed(t) for t in ["The Moon ", "is made ", "of cheese [3]."]] == ["", "", ""]
    assert gate.finish() == "" and not gate.opened
