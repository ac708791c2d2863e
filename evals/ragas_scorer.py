"""The ragas scorer: ragas' LLM-judged metrics, with a judge on any OpenAI-compatible endpoint.

- faithfulness: ragas `Faithfulness` (the judge splits the answer into statements, then gives each a 0/1 verdict
  against the joined contexts); the statements and verdicts are returned as `claims`;
- context precision: ragas `ContextPrecisionWithoutReference` (each context judged useful or not for the answer,
  then average precision over the ranks);
- context recall: ragas `ContextRecall` (share of the reference's statements the contexts support); needs a
  reference.

Each metric is computed on its own: one that fails (judge down, timeout, HTTP error, output that does not parse,
a score outside [0, 1]) is null with the reason, and the others still count. They run one after another, not
concurrently: a local judge (llama.cpp) serves one request at a time, and queued requests would eat the timeout.

The judge's tokens are counted from each reply's `usage` (every request of a score, re-asks included) and returned
as `judge_usage`: storage keeps them beside the answer's, so cost and budgets see what scoring spent.

ragas and the `openai` SDK are imported on the first score, not at import time (ragas pulls in langchain and takes
seconds). `enforce_offline()` runs first: ragas reads RAGAS_DO_NOT_TRACK once and otherwise posts usage events.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING

from evals.scores import ClaimOut, JudgeUsage, Metric, ScoreInput, Scores, abstention_scores
from kernel.llm import Endpoint
from kernel.privacy import enforce_offline

if TYPE_CHECKING:
    import httpx2  # the openai SDK's HTTP client package
    from ragas.metrics.collections import ContextPrecisionWithoutReference, ContextRecall, Faithfulness

logger = logging.getLogger(__name__)

# Sent when no key is configured: local servers ignore it, and the SDK would otherwise read OPENAI_API_KEY.
_NO_KEY = "no-key"
_MAX_ERROR_TEXT = 200


@dataclass(frozen=True)
class _Metrics:
    faithfulness: Faithfulness
    precision: ContextPrecisionWithoutReference
    recall: ContextRecall


@dataclass
class _Tally:
    """The judge requests and tokens of one score."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


# The score being computed in this task: ragas calls the SDK deep inside, so the HTTP client's hooks find the tally
# through the context (tasks ragas starts copy the context and share the tally object). Module level, as contextvars
# asks; it holds no state of its own.
_TALLY: ContextVar[_Tally | None] = ContextVar("judge_tally", default=None)

JUDGE_MAX_RETRIES = 1
JUDGE_MAX_TOKENS = 1024  # ragas' own default for a judge reply


def judge_endpoint(base_url: str, model: str, api_key: str | None = None, timeout_seconds: float = 60.0) -> Endpoint:
    return Endpoint(base_url, model, api_key, timeout_seconds, JUDGE_MAX_RETRIES, JUDGE_MAX_TOKENS)


class RagasScorer:
    def __init__(self, endpoint: Endpoint) -> None:
        """`endpoint.timeout_seconds` bounds each judge request; `max_retries` applies to both HTTP failures (the
        SDK) and replies that do not parse (instructor re-asks); `max_tokens` caps each judge reply."""
        self.endpoint = endpoint
        self.base_url = endpoint.base_url
        self.model = model = endpoint.model
        self._version = f"ragas-{package_version('ragas')}-{model}"
        self._metrics: _Metrics | None = None

    @property
    def name(self) -> str:
        return "ragas"

    @property
    def version(self) -> str:
        return self._version

    def _get_metrics(self) -> _Metrics:
        if self._metrics is None:
            enforce_offline()
            from openai import AsyncOpenAI, DefaultAsyncHttpxClient
            from ragas._analytics import do_not_track
            from ragas.llms import llm_factory
            from ragas.metrics.collections import ContextPrecisionWithoutReference, ContextRecall, Faithfulness

            if not do_not_track():  # cached by ragas: something imported and used it before enforce_offline()
                raise RuntimeError("ragas telemetry is on; call kernel.privacy.enforce_offline() before ragas loads")
            client = AsyncOpenAI(
                base_url=self.base_url,
                api_key=self.endpoint.api_key or _NO_KEY,
                timeout=self.endpoint.timeout_seconds,
                max_retries=self.endpoint.max_retries,
                http_client=DefaultAsyncHttpxClient(
                    event_hooks={"request": [self._count_request], "response": [self._count_tokens]}
                ),
            )
            # Extra keyword arguments reach instructor's create(): max_retries caps its re-asks on unparseable output.
            llm = llm_factory(
                self.model, client=client, max_retries=self.endpoint.max_retries, max_tokens=self.endpoint.max_tokens
            )
            self._metrics = _Metrics(
                Faithfulness(llm=llm), ContextPrecisionWithoutReference(llm=llm), ContextRecall(llm=llm)
            )
        return self._metrics

    async def score_many(self, items: list[ScoreInput]) -> list[Scores]:
        # One at a time: a local judge serves one request at a time anyway.
        return [await self.score(item) for item in items]

    async def _count_request(self, _request: httpx2.Request) -> None:
        if (tally := _TALLY.get()) is not None:
            tally.requests += 1

    async def _count_tokens(self, response: httpx2.Response) -> None:
        tally = _TALLY.get()
        if tally is None or response.status_code != 200:
            return
        await response.aread()  # kept by the client: the SDK reads the same bytes after this hook
        # An exception here would reach the SDK as a connection error (retried, then "cannot connect"): a reply
        # whose usage cannot be read counts no tokens, and the SDK judges the reply itself.
        try:
            usage = response.json().get("usage") or {}
            prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        except (ValueError, TypeError, AttributeError):
            return
        tally.prompt_tokens += max(0, prompt)
        tally.completion_tokens += max(0, completion)

    async def score(self, item: ScoreInput) -> Scores:
        tally = _Tally()
        token = _TALLY.set(tally)
        try:
            scores = await self._score(item)
        finally:
            _TALLY.reset(token)
        if tally.requests == 0:
            return scores
        usage = JudgeUsage(
            model=self.model,
            requests=tally.requests,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.completion_tokens,
        )
        return scores.model_copy(update={"judge_usage": usage})

    async def _score(self, item: ScoreInput) -> Scores:
        # The first call imports ragas and langchain (seconds): not on the event loop.
        metrics = self._metrics
        if metrics is None:
            metrics = await asyncio.to_thread(self._get_metrics)
        recall = await self._guard("context recall", self._recall(metrics, item))
        if item.abstained:
            return abstention_scores(self, recall)
        claims: list[ClaimOut] = []
        if not item.contexts or not item.answer.strip():
            reason = "no contexts were retrieved" if not item.contexts else "the answer is empty: nothing to judge"
            faithfulness, precision = Metric.null(reason), Metric.null(reason)
        else:
            faithfulness = await self._guard("faithfulness", self._faithfulness(metrics, item, claims))
            precision = await self._guard("context precision", self._precision(metrics, item))
        return Scores(
            scorer=self.name,
            scorer_version=self.version,
            faithfulness=faithfulness,
            context_precision=precision,
            context_recall=recall,
            claims=claims,
        )

    async def _faithfulness(self, metrics: _Metrics, item: ScoreInput, claims: list[ClaimOut]) -> Metric:
        # ragas' own two steps, called one by one to keep the statements and verdicts that ascore() discards.
        metric = metrics.faithfulness
        statements = await metric._create_statements(item.question, item.answer)
        if not statements:
            return Metric.null("the judge found no statement to check in the answer")
        verdicts = await metric._create_verdicts(statements, "\n".join(item.contexts))
        claims.extend(
            ClaimOut(claim=v.statement, supported=bool(v.verdict), reason=None if v.verdict else v.reason)
            for v in verdicts.statements
        )
        return _metric(metric._compute_score(verdicts))

    async def _precision(self, metrics: _Metrics, item: ScoreInput) -> Metric:
        result = await metrics.precision.ascore(
            user_input=item.question, response=item.answer, retrieved_contexts=item.contexts
        )
        return _metric(result.value)

    async def _recall(self, metrics: _Metrics, item: ScoreInput) -> Metric:
        if not item.reference:
            return Metric.null("no reference answer; attach one to score recall")
        if not item.contexts:
            return Metric(value=0.0, reason="no contexts were retrieved")
        result = await metrics.recall.ascore(
            user_input=item.question, retrieved_contexts=item.contexts, reference=item.reference
        )
        return _metric(result.value)

    async def _guard(self, what: str, compute: Awaitable[Metric]) -> Metric:
        """Await one metric; any failure becomes a null with a reason a person can act on."""
        try:
            metric = await compute
        except Exception as exc:
            explanation, unreachable = self._explain(exc)
            reason = f"the judge could not score {what}: {explanation}"
            logger.warning("ragas scorer: %s", reason)
            return Metric(value=None, reason=reason, retryable=unreachable)
        return metric

    def _explain(self, exc: BaseException) -> tuple[str, bool]:
        """What went wrong, and whether it is the judge being unreachable (a timeout, no connection, 429 or 5xx)."""
        import openai
        from pydantic import ValidationError

        chain: list[BaseException] = []
        current: BaseException | None = exc
        while current is not None and current not in chain:
            chain.append(current)
            current = current.__cause__ or current.__context__
        for e in chain:
            if isinstance(e, openai.APITimeoutError):
                return f"no answer from {self.base_url} within {self.endpoint.timeout_seconds:g} s", True
            if isinstance(e, openai.APIConnectionError):
                return f"cannot connect to {self.base_url}", True
            if isinstance(e, openai.APIStatusError):
                unreachable = e.status_code == 429 or e.status_code >= 500
                return f"{self.base_url} answered HTTP {e.status_code}: {_short(e.message)}", unreachable
        for e in chain:
            if isinstance(e, ValidationError):  # instructor's parse of the reply into ragas' output model
                first = e.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "reply"
                more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
                return f"its reply is not the JSON ragas asked for: {e.title} {where}: {first['msg']}{more}", False
        if type(exc).__name__ == "InstructorRetryException":
            return f"its reply is not the JSON ragas asked for: {_short(str(exc.__cause__ or exc))}", False
        return f"{type(exc).__name__}: {_short(str(exc))}", False


def _metric(value: float | None) -> Metric:
    if value is None or math.isnan(value):
        return Metric.null("the judge gave no usable verdict")
    if not 0.0 <= value <= 1.0:
        return Metric.null(f"ragas computed {value:g}, outside [0, 1]: the judge's verdicts were not 0 or 1")
    return Metric(value=round(value, 6))  # ragas' average precision divides by (hits + 1e-10)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"
