"""RagasScorer against real OpenAI-compatible servers: the rule-following stand-in judge (tests/judge_server.py),
the same stand-in failing on purpose, a closed port, and llama.cpp serving Gemma 3 270M.

ragas, instructor and the `openai` SDK run unmodified; only the judge's answers come from a rule instead of a model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from evals.ragas_scorer import RagasScorer
from evals.scores import Metric, ScoreInput, Scores
from kernel.llm import Endpoint
from tests.judge_server import JudgeServer
from tests.llm_server import LlamaServer, llm_server  # noqa: F401
from tests.support.ports import free_port

QUESTION = "How tall is the Eiffel Tower and when was it completed?"
EIFFEL = "The Eiffel Tower in Paris is 330 metres tall and was completed in 1889."
BANANA = "Bananas are yellow fruit that grow in tropical regions."
FAITHFUL = "The Eiffel Tower was completed in 1889. The Eiffel Tower is 330 metres tall."
WRONG_NUMBER = "The Eiffel Tower was completed in 1889. The Eiffel Tower is 500 metres tall."


def item(**overrides: object) -> ScoreInput:
    fields: dict[str, object] = {"question": QUESTION, "answer": FAITHFUL, "contexts": [EIFFEL, BANANA]}
    fields.update(overrides)
    return ScoreInput.model_validate(fields)


def scorer_for(base_url: str, model: str = "rule-judge", **overrides: object) -> RagasScorer:
    args: dict[str, object] = {"base_url": base_url, "model": model, "timeout_seconds": 30.0, "max_retries": 0}
    args.update(overrides)
    return RagasScorer(Endpoint(**args))  # type: ignore[arg-type]  # the dict holds the fields


def assert_null(metric: Metric, *words: str) -> None:
    assert metric.value is None, metric
    assert metric.reason, metric
    for word in words:
        assert word in metric.reason, metric.reason


@pytest.fixture(scope="module")
def judge() -> Iterator[JudgeServer]:
    with JudgeServer() as server:
        yield server


@pytest.fixture
def scorer(judge: JudgeServer) -> RagasScorer:
    judge.requests.clear()
    return scorer_for(judge.base_url)


async def test_identity_names_ragas_version_and_judge_model(scorer: RagasScorer) -> None:
    import ragas

    assert scorer.name == "ragas"
    assert scorer.version == f"ragas-{ragas.__version__}-rule-judge"
    scores = await scorer.score(item())
    assert (scores.scorer, scores.scorer_version) == (scorer.name, scorer.version)


async def test_a_faithful_answer_scores_high_and_a_wrong_number_lower(scorer: RagasScorer) -> None:
    faithful = await scorer.score(item())
    wrong = await scorer.score(item(answer=WRONG_NUMBER))

    assert faithful.faithfulness.value == pytest.approx(1.0)
    assert wrong.faithfulness.value == pytest.approx(0.5)
    assert [c.supported for c in faithful.claims] == [True, True]
    # The per-claim verdicts are ragas' own statements and verdicts, reasons only on the unsupported ones.
    assert [(c.claim, c.supported) for c in wrong.claims] == [
        ("The Eiffel Tower was completed in 1889.", True),
        ("The Eiffel Tower is 500 metres tall.", False),
    ]
    assert wrong.claims[0].reason is None
    assert wrong.claims[1].reason is not None and "500" in wrong.claims[1].reason


async def test_the_judges_tokens_are_the_sum_of_every_reply_s_usage(scorer: RagasScorer, judge: JudgeServer) -> None:
    scores = await scorer.score(item(reference="The Eiffel Tower is 330 metres tall."))
    assert scores.judge_usage is not None
    prompt, completion = judge.tokens()
    assert prompt > 0 and completion > 0
    assert scores.judge_usage.model_dump() == {
        "model": "rule-judge",
        "requests": len(judge.requests),  # statements, verdicts, one precision per context, recall
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }
    judge.requests.clear()
    again = await scorer.score(item(contexts=[EIFFEL]))  # each score counts its own requests only
    assert again.judge_usage is not None and again.judge_usage.requests == len(judge.requests) == 3
    assert (again.judge_usage.prompt_tokens, again.judge_usage.completion_tokens) == judge.tokens()


async def test_concurrent_scores_each_count_their_own_tokens(scorer: RagasScorer) -> None:
    one, other = item(), item(answer=WRONG_NUMBER, contexts=[EIFFEL], reference="The Eiffel Tower is 330 metres tall.")
    alone = [(await scorer.score(one)).judge_usage, (await scorer.score(other)).judge_usage]
    together = [s.judge_usage for s in await asyncio.gather(scorer.score(one), scorer.score(other))]
    assert together == alone and alone[0] != alone[1]


async def test_context_precision_rewards_the_useful_context_ranked_first(scorer: RagasScorer) -> None:
    first = await scorer.score(item(contexts=[EIFFEL, BANANA]))
    second = await scorer.score(item(contexts=[BANANA, EIFFEL]))
    useless = await scorer.score(item(contexts=[BANANA]))

    assert first.context_precision.value == pytest.approx(1.0)
    assert second.context_precision.value == pytest.approx(0.5)
    assert useless.context_precision.value == pytest.approx(0.0)
    assert useless.faithfulness.value == pytest.approx(0.0)


async def test_recall_is_null_without_a_reference_and_a_share_with_one(scorer: RagasScorer, judge: JudgeServer) -> None:
    without = await scorer.score(item())
    assert_null(without.context_recall, "reference")
    assert "recall" not in judge.kinds()  # nothing was asked of the judge for it

    covered = await scorer.score(item(reference="The Eiffel Tower is 330 metres tall."))
    half = await scorer.score(item(reference="The Eiffel Tower is 330 metres tall. It was designed by Gustave Eiffel."))
    assert covered.context_recall.value == pytest.approx(1.0)
    assert half.context_recall.value == pytest.approx(0.5)


async def test_an_abstention_nulls_faithfulness_and_precision_but_keeps_recall(
    scorer: RagasScorer, judge: JudgeServer
) -> None:
    reference = "The Eiffel Tower is 330 metres tall."
    scores = await scorer.score(item(answer="I don't know.", abstained=True, reference=reference))

    assert_null(scores.faithfulness, "abstained")
    assert_null(scores.context_precision, "abstained")
    assert scores.context_recall.value == pytest.approx(1.0)
    assert scores.claims == []
    assert judge.kinds() == ["recall"]


async def test_no_contexts_or_an_empty_answer_give_reasons_not_zeros(scorer: RagasScorer) -> None:
    no_contexts = await scorer.score(item(contexts=[], reference="The Eiffel Tower is 330 metres tall."))
    assert_null(no_contexts.faithfulness, "no contexts")
    assert_null(no_contexts.context_precision, "no contexts")
    assert no_contexts.context_recall.value == 0.0  # nothing of the reference was retrieved: a real zero

    empty = await scorer.score(item(answer="  "))
    assert_null(empty.faithfulness, "empty")
    assert_null(empty.context_precision, "empty")


async def test_scoring_sends_nothing_off_the_machine(scorer: RagasScorer, netguard) -> None:
    # ragas posts usage events unless RAGAS_DO_NOT_TRACK=true; the guard records any non-loopback connect or lookup.
    with netguard.watch() as attempts:
        scores = await scorer.score(item(reference="The Eiffel Tower is 330 metres tall."))
    assert scores.faithfulness.value is not None
    assert attempts == []


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("error", ("HTTP 500", "failing on purpose")),
        ("garbage", ("not the JSON ragas asked for",)),
        ("slow", ("no answer", "within 0.5 s")),
    ],
)
async def test_a_failing_judge_gives_null_metrics_with_reasons(mode: str, words: tuple[str, ...]) -> None:
    with JudgeServer(mode=mode, delay_s=3.0) as judge:
        scorer = scorer_for(judge.base_url, timeout_seconds=0.5)
        scores = await scorer.score(item(reference="The Eiffel Tower is 330 metres tall."))
        assert judge.requests, "the judge was never asked"

    assert isinstance(scores, Scores)
    for metric in (scores.faithfulness, scores.context_precision, scores.context_recall):
        assert_null(metric, "the judge could not score", *words)
    assert scores.claims == []
    # Every request sent is counted; only replies that came back carry tokens (a garbage reply does, an HTTP 500
    # and a reply the timeout cut off do not).
    assert scores.judge_usage is not None and scores.judge_usage.requests == len(judge.requests)
    tokens = (scores.judge_usage.prompt_tokens, scores.judge_usage.completion_tokens)
    assert tokens == (judge.tokens() if mode == "garbage" else (0, 0)) and (mode != "garbage" or tokens != (0, 0))


async def test_a_closed_port_gives_null_metrics_with_reasons() -> None:
    scorer = scorer_for(f"http://127.0.0.1:{free_port()}/v1")
    scores = await scorer.score(item(reference="The Eiffel Tower is 330 metres tall."))
    for metric in (scores.faithfulness, scores.context_precision, scores.context_recall):
        assert_null(metric, "cannot connect")
    assert scores.judge_usage is not None and scores.judge_usage.prompt_tokens == 0  # no reply, nothing spent


async def test_one_failing_metric_leaves_the_others_scored() -> None:
    with JudgeServer(mode="error", fail_kinds=frozenset({"nli"})) as judge:
        scorer = scorer_for(judge.base_url)
        scores = await scorer.score(item(reference="The Eiffel Tower is 330 metres tall."))

    assert_null(scores.faithfulness, "faithfulness", "HTTP 500")
    assert scores.context_precision.value == pytest.approx(1.0)
    assert scores.context_recall.value == pytest.approx(1.0)


@pytest.mark.slow
async def test_a_real_small_model_as_judge_gives_scores_or_reasons(llm_server: LlamaServer) -> None:  # noqa: F811
    # A 270M model rarely writes ragas' JSON right: all it can be held to is a valid Scores object, each metric a
    # value in [0, 1] or null with a reason, and no transport or request error (the server took every request).
    scorer = scorer_for(llm_server.base_url, llm_server.model, timeout_seconds=600.0, max_tokens=256)
    scores = await scorer.score(
        ScoreInput(
            question="What is the capital of France?",
            answer="Paris is the capital of France.",
            contexts=["Paris is the capital and most populous city of France."],
            reference="The capital of France is Paris.",
        )
    )

    assert isinstance(scores, Scores)
    assert scores.scorer_version == f"{scorer.version}"
    for metric in (scores.faithfulness, scores.context_precision, scores.context_recall):
        if metric.value is None:
            assert metric.reason, metric
            assert "cannot connect" not in metric.reason and "HTTP" not in metric.reason, metric.reason
        else:
            assert 0.0 <= metric.value <= 1.0
    for claim in scores.claims:
        assert claim.claim and claim.supported in (True, False)
    # llama.cpp reports each reply's usage: a real model's tokens are counted.
    assert scores.judge_usage is not None and scores.judge_usage.model == llm_server.model
    assert scores.judge_usage.requests >= 1 and scores.judge_usage.prompt_tokens > 0
