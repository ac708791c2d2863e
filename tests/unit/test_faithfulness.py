"""The offline faithfulness core with the real embedding model: what similarity alone would miss."""

from __future__ import annotations

import pytest

from evals.faithfulness import OfflineFaithfulness, claims_of
from evals.validate import auroc


@pytest.fixture(scope="module")
def scorer():
    from ingestion.embed import SentenceTransformerEmbedder

    return OfflineFaithfulness(SentenceTransformerEmbedder(None))


CONTEXT = ["The Golden Gate Bridge opened to traffic in 1937. Its main span is 1,280 metres long."]


def test_claims_drop_citation_markers():
    assert claims_of("It opened in 1937 [1]. Short. The span is long [2, 3].") == [
        "It opened in 1937.",
        "The span is long.",
    ]


@pytest.mark.parametrize(
    ("answer", "supported", "reason"),
    [
        ("The Golden Gate Bridge opened in 1937 [1].", True, None),
        ("The Golden Gate Bridge opened in 1942 [1].", False, "number"),
        ("The Golden Gate Bridge did not open in 1937.", False, "negation"),
        ("The Brooklyn Bridge opened to traffic in 1937.", False, "name"),
    ],
)
def test_claim_verdicts(scorer, answer, supported, reason):
    [verdict] = scorer.verdicts(answer, CONTEXT)
    assert verdict.supported is supported, verdict
    assert (verdict.reason is None) if reason is None else (reason in verdict.reason)
    assert verdict.context_index == 0 and verdict.support


def test_faithful_scores_higher_and_no_claim_is_none(scorer):
    good = scorer.score("The bridge opened to traffic in 1937.", CONTEXT)
    bad = scorer.score("The main span is 2,000 metres long.", CONTEXT)
    assert good is not None and bad is not None and good > bad
    assert scorer.score("Yes.", CONTEXT) is None


def test_auroc():
    assert auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert auroc([0.1, 0.9], [1, 0]) == 0.0
