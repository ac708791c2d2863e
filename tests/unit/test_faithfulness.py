"""The offline faithfulness core with the real embedding model: what similarity alone would miss."""

from __future__ import annotations

import pytest

from evals.faithfulness import OfflineFaithfulness, claims_of, direction, flipped
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


STUDY = ["Treatment with the drug for two years lowered blood pressure in older patients. Side effects were rare."]


def test_direction_and_flip():
    assert direction("The drug increases blood pressure.") == 1
    assert direction("The drug lowered blood pressure.") == -1
    assert direction("Higher doses reduced the risk.") == 0  # both: no single direction
    assert flipped("The drug increases blood pressure.") == "The drug decreases blood pressure."
    assert flipped("The drug is safe.") == "The drug is not safe."
    assert flipped("The drug does not help.") == "The drug does help."


def test_direction_conflict_is_unsupported_and_contrast_leans_to_it(scorer):
    [up] = scorer.verdicts("The drug increases blood pressure in older patients.", STUDY)
    [down] = scorer.verdicts("The drug reduces blood pressure in older patients.", STUDY)
    assert not up.supported and "direction" in up.reason, up
    assert down.supported, down
    assert up.contrast > down.contrast
    assert scorer.score("The drug reduces blood pressure in older patients.", STUDY) > scorer.score(
        "The drug increases blood pressure in older patients.", STUDY
    )


def test_negated_claim_against_affirmative_source(scorer):
    [verdict] = scorer.verdicts("The drug did not lower blood pressure in older patients.", STUDY)
    assert not verdict.supported and "negation" in verdict.reason


def test_batch_equals_one_by_one(scorer):
    items = [
        ("The Golden Gate Bridge opened in 1937. Its main span is 2,000 metres long.", CONTEXT),
        ("The drug reduces blood pressure.", STUDY),
        ("Yes.", CONTEXT),
        ("The bridge opened in 1937.", []),
    ]
    assert scorer.score_many(items) == pytest.approx([scorer.score(a, c) for a, c in items], abs=1e-5)
    [[v1, v2], [v3], [], [v4]] = scorer.verdicts_many(items)
    assert v1.supported and not v2.supported and v3.supported
    assert v4.reason == "no context" and scorer.score("The bridge opened in 1937.", []) == 0.0


def test_faithful_scores_higher_and_no_claim_is_none(scorer):
    good = scorer.score("The bridge opened to traffic in 1937.", CONTEXT)
    bad = scorer.score("The main span is 2,000 metres long.", CONTEXT)
    assert good is not None and bad is not None and good > bad
    assert scorer.score("Yes.", CONTEXT) is None


def test_auroc():
    assert auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert auroc([0.1, 0.9], [1, 0]) == 0.0
