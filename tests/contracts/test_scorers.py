"""The Scorer contract: one suite of test methods that every scorer runs.

- OfflineScorer with each claim judge: the similarity method (OfflineFaithfulness on the bundled MiniLM), the
  support checker (CheckedClaims on the committed int8 ONNX model) and CombinedJudge (similarity for sentence
  answers, the checker for short ones), built as rag/services.py builds them;
- RagasScorer against tests/judge_server.JudgeServer: a real OpenAI-compatible HTTP server on loopback whose
  verdicts follow a fixed rule, with ragas, instructor and the `openai` SDK running unmodified.

Each concrete class supplies `make_scorer` (a fresh scorer per call: the offline judges cache source vectors, and
the batch test must not let one call feed the other) and says whether it can judge a bare short answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from evals.checker import SupportChecker
from evals.scores import METRICS, Metric, ScoreInput, Scorer, Scores
from kernel.protocols import Embedder
from tests.judge_server import JudgeServer

QUESTION = "How tall is the Eiffel Tower and when was it completed?"
EIFFEL = "The Eiffel Tower in Paris is 330 metres tall and was completed in 1889."
BANANA = "Bananas are yellow fruit that grow in tropical regions."
FAITHFUL = "The Eiffel Tower was completed in 1889 [1]. The Eiffel Tower is 330 metres tall [1]."
UNSUPPORTED = "The Eiffel Tower was painted bright green by Napoleon. It is built entirely from recycled glass bottles."
REFERENCE = "The Eiffel Tower is 330 metres tall."


def item(**overrides: object) -> ScoreInput:
    fields: dict[str, object] = {"question": QUESTION, "answer": FAITHFUL, "contexts": [EIFFEL, BANANA]}
    fields.update(overrides)
    return ScoreInput.model_validate(fields)


# Every kind of input a scorer meets: judged, unjudgeable, abstained, with and without a reference.
BANK = [
    item(),
    item(answer=UNSUPPORTED),
    item(contexts=[BANANA, EIFFEL]),
    item(reference=REFERENCE),
    item(contexts=[], reference=REFERENCE),
    item(abstained=True, answer="The documents don't say.", reference=REFERENCE),
    item(answer=""),
    item(question="When was the Eiffel Tower completed?", answer="1889"),
    item(question="How tall is the Eiffel Tower?", answer="330 metres"),  # two short answers: a checker batch
]


def assert_null(metric: Metric, *words: str) -> None:
    assert metric.value is None and metric.reason, metric
    for word in words:
        assert word in metric.reason, metric.reason


def assert_well_formed(scores: Scores, scorer: Scorer) -> None:
    assert (scores.scorer, scores.scorer_version) == (scorer.name, scorer.version)
    for name in METRICS:
        metric: Metric = getattr(scores, name)
        # A number in [0, 1] (the model enforces the range) or null with a reason; never null without one.
        assert metric.value is not None or metric.reason, f"{name} is null without a reason"
        assert not metric.retryable, f"{name}: the judge is up, nothing is worth a retry"


class ScorerContract:
    """What every Scorer does. Subclasses define `make_scorer` and `judges_short_answers`."""

    judges_short_answers: bool

    @pytest.fixture
    def make_scorer(self) -> Callable[[], Scorer]:
        raise NotImplementedError("a concrete scorer class defines make_scorer")

    @pytest.fixture
    def scorer(self, make_scorer: Callable[[], Scorer]) -> Scorer:
        return make_scorer()

    async def test_identity(self, scorer: Scorer) -> None:
        assert isinstance(scorer.name, str) and scorer.name
        assert isinstance(scorer.version, str) and scorer.version
        assert_well_formed(await scorer.score(item()), scorer)

    async def test_every_metric_is_a_value_or_null_with_a_reason(self, scorer: Scorer) -> None:
        for scores in await scorer.score_many(BANK):
            assert_well_formed(scores, scorer)

    async def test_faithfulness_is_the_share_of_supported_claims(self, scorer: Scorer) -> None:
        for answer in (FAITHFUL, UNSUPPORTED):
            scores = await scorer.score(item(answer=answer))
            assert scores.claims, answer
            assert all(c.claim and "[1]" not in c.claim for c in scores.claims)  # markers are not claims
            supported = [c.supported for c in scores.claims]
            assert scores.faithfulness.value == pytest.approx(sum(map(bool, supported)) / len(supported))

    async def test_a_supported_answer_scores_above_an_unsupported_one(self, scorer: Scorer) -> None:
        faithful = await scorer.score(item())
        unsupported = await scorer.score(item(answer=UNSUPPORTED))
        assert faithful.faithfulness.value == pytest.approx(1.0)
        assert unsupported.faithfulness.value is not None and unsupported.faithfulness.value < 0.5

    async def test_context_precision_rewards_the_useful_context_first(self, scorer: Scorer) -> None:
        first = await scorer.score(item(contexts=[EIFFEL, BANANA]))
        second = await scorer.score(item(contexts=[BANANA, EIFFEL]))
        # Average precision: the one useful context at rank 1 scores 1, at rank 2 scores 1/2.
        assert first.context_precision.value == pytest.approx(1.0)
        assert second.context_precision.value == pytest.approx(0.5)

    async def test_context_recall_needs_a_reference(self, scorer: Scorer) -> None:
        assert_null((await scorer.score(item())).context_recall, "reference")
        assert (await scorer.score(item(reference=REFERENCE))).context_recall.value == pytest.approx(1.0)
        assert (await scorer.score(item(reference=REFERENCE, contexts=[BANANA]))).context_recall.value == 0.0

    async def test_no_contexts_cannot_be_judged(self, scorer: Scorer) -> None:
        scores = await scorer.score(item(contexts=[], reference=REFERENCE))
        assert_null(scores.faithfulness, "no contexts")
        assert_null(scores.context_precision, "no contexts")
        assert scores.claims == []
        # Nothing retrieved recalls nothing of the reference: a real zero, with the reason.
        assert scores.context_recall.value == 0.0 and scores.context_recall.reason

    async def test_an_abstention_is_not_judged_but_recall_still_is(self, scorer: Scorer) -> None:
        scores = await scorer.score(item(abstained=True, answer="The documents don't say.", reference=REFERENCE))
        assert_null(scores.faithfulness, "abstained")
        assert_null(scores.context_precision, "abstained")
        assert scores.claims == []
        assert scores.context_recall.value == pytest.approx(1.0)

    async def test_an_empty_answer_is_null_with_a_reason(self, scorer: Scorer) -> None:
        scores = await scorer.score(item(answer=""))
        assert_null(scores.faithfulness)
        assert scores.claims == []

    async def test_a_short_answer(self, scorer: Scorer) -> None:
        scores = await scorer.score(item(question="When was the Eiffel Tower completed?", answer="1889"))
        if self.judges_short_answers:
            assert scores.faithfulness.value == pytest.approx(1.0) and len(scores.claims) == 1
        else:
            assert_null(scores.faithfulness)

    async def test_a_batch_scores_as_one_by_one(self, make_scorer: Callable[[], Scorer]) -> None:
        batch = await make_scorer().score_many(BANK)
        single = make_scorer()
        alone = [await single.score(i) for i in BANK]
        assert [s.model_dump() for s in batch] == [s.model_dump() for s in alone]

    async def test_an_empty_batch(self, scorer: Scorer) -> None:
        assert await scorer.score_many([]) == []


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    from ingestion.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(None)


@pytest.fixture(scope="module")
def checker() -> SupportChecker:
    from evals.checker import load_checker

    found = load_checker()
    assert found is not None, "the support checker is committed in evals/models/checker"
    return found


class TestOfflineBySimilarity(ScorerContract):
    judges_short_answers = False  # a bare "1889" makes no sentence claim for the similarity method

    @pytest.fixture
    def make_scorer(self, embedder: Embedder) -> Callable[[], Scorer]:
        from evals.faithfulness import OfflineFaithfulness
        from evals.offline import OfflineScorer

        return lambda: OfflineScorer(OfflineFaithfulness(embedder))


# The checker is an int8 ONNX model with dynamic quantization (MatMulInteger): the activation scale is computed over
# the whole input tensor, so in a batch a pair's probability would depend on the other pairs (and the padding).
# Measured before the checker scored one pair per run: "The Eiffel Tower was completed in 1889." against the banana
# context was 0.45 alone and 0.61 next to another pair, a verdict flipped at the 0.5 threshold.
def test_the_checker_scores_a_pair_the_same_in_any_batch(checker: SupportChecker) -> None:
    from evals.checker_text import checker_text

    claim = (checker_text(QUESTION, "The Eiffel Tower was completed in 1889."), BANANA)
    other = (checker_text(QUESTION, "It is built entirely from recycled glass bottles."), EIFFEL)
    alone = float(checker.predict([claim])[0])
    assert float(checker.predict([claim, other])[0]) == pytest.approx(alone, abs=1e-3)


class TestOfflineByChecker(ScorerContract):
    judges_short_answers = True

    @pytest.fixture
    def make_scorer(self, checker: SupportChecker) -> Callable[[], Scorer]:
        from evals.checked_claims import CheckedClaims
        from evals.offline import OfflineScorer

        return lambda: OfflineScorer(CheckedClaims(checker))


class TestOfflineCombined(ScorerContract):
    judges_short_answers = True  # by the checker

    @pytest.fixture
    def make_scorer(self, embedder: Embedder, checker: SupportChecker) -> Callable[[], Scorer]:
        from evals.checked_claims import CheckedClaims
        from evals.faithfulness import OfflineFaithfulness
        from evals.offline import CombinedJudge, OfflineScorer

        return lambda: OfflineScorer(CombinedJudge(OfflineFaithfulness(embedder), CheckedClaims(checker)))


@pytest.fixture(scope="module")
def judge() -> Iterator[JudgeServer]:
    with JudgeServer() as server:
        yield server


class TestRagasScorer(ScorerContract):
    judges_short_answers = True  # the judge finds the statement "1889" and the number in the context

    @pytest.fixture
    def make_scorer(self, judge: JudgeServer) -> Callable[[], Scorer]:
        from evals.ragas_scorer import RagasScorer
        from kernel.llm import Endpoint

        return lambda: RagasScorer(Endpoint(judge.base_url, judge.model, timeout_seconds=60.0, max_retries=0))
