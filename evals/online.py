"""Scoring the service's own answers: in the worker (`score_answer`), after the response has been sent."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from evals.scores import METRICS, ScoreInput, Scorer, Scores
from kernel.errors import TransientError
from kernel.ports import AnswerReader, ScoreLedger, ScoreQueue
from kernel.records import SCORE_STATUS_PENDING, ScoreResult, StoredAnswer
from kernel.settings import ScoringSettings
from kernel.usage import ModelTokens

log = logging.getLogger(__name__)


def score_input(answer: StoredAnswer, reference: str | None) -> ScoreInput:
    return ScoreInput(
        question=answer.question,
        answer=answer.answer,
        contexts=[c["text"] for c in answer.contexts],
        reference=reference,
        abstained=answer.abstained,
    )


def with_chunk_ids(result: Scores, contexts: list[dict[str, Any]]) -> Scores:
    for claim in result.claims:
        if claim.context is not None and 1 <= claim.context <= len(contexts):
            claim.chunk_id = contexts[claim.context - 1]["chunk_id"]
    return result


def judge_tokens(result: Scores) -> ModelTokens | None:
    u = result.judge_usage
    return None if u is None else ModelTokens(u.model, u.prompt_tokens, u.completion_tokens)


def score_result(result: Scores) -> ScoreResult:
    """The scores as storage keeps them: the metric values in their columns, the whole result as JSON."""
    values = {m: result.value(m) for m in METRICS}
    return ScoreResult(
        result.scorer, result.scorer_version, values, result.model_dump(mode="json"), judge_tokens(result)
    )


@dataclass
class AnswerScoring:
    """Owed answer scores: requested by the API, claimed and scored in batches by the worker."""

    answers: AnswerReader
    scores: ScoreLedger
    queue: ScoreQueue
    scorer: Scorer
    settings: ScoringSettings

    async def enqueue(self, answer_id: str) -> None:
        """Best effort: the owed score is in the database, and the worker's startup enqueues it if this fails."""
        try:
            await self.queue.enqueue_score(answer_id)
        except TransientError as exc:
            log.warning("scoring of answer %s is deferred to the next worker start: %s", answer_id, exc)

    async def request(self, answer_id: str, reference: str | None = None, *, set_reference: bool) -> None:
        await self.scores.request(answer_id, reference, set_reference=set_reference)
        await self.enqueue(answer_id)

    async def score_owed(self, answer_id: str, *, last_try: bool = True) -> int:
        """Score this answer's owed score and, in the same model call, other owed ones (up to the batch size).

        Every job takes a batch of what is owed and not already being scored, with its own answer first: under load
        the worker catches up in batches instead of paying the model's per-call cost (and the queue's per-job cost)
        for every answer. Returns how many were scored.

        Unless it is the `last_try`, a judge that cannot be reached raises TransientError (the job retries later and
        takes the batch again); on the last try the scores are stored null with that reason.
        """
        cfg = self.settings
        lease = timedelta(seconds=cfg.claim_seconds)
        # In the database, not in this process: a batch in another worker never takes the same answers.
        claimant = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        ids = await self.scores.claim(claimant, answer_id, cfg.batch_size, lease)
        if not ids:
            await self._follow_claim(answer_id)
            return 0
        keeper = asyncio.create_task(self._keep_claim(claimant, ids, lease))
        retrying = False
        try:
            await self._score_batch(ids, last_try)
        except TransientError:
            retrying = True  # this job comes back after a backoff and takes what is still owed: no job per answer
            raise
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            try:
                await self.scores.release(claimant, ids)
            except TransientError as exc:
                log.warning("could not release %d claimed scores (the claim runs out by itself): %s", len(ids), exc)
            # Still owed (a rescore came in while the batch ran, or the batch failed): each needs a job of its own,
            # since the job it had may have returned while the answer was in this batch.
            for i in [] if retrying else ids:
                if (after := await self.scores.state(i)) and after.status == SCORE_STATUS_PENDING:
                    await self.enqueue(i)
        return len(ids)

    async def _keep_claim(self, claimant: str, ids: list[str], lease: timedelta) -> None:
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await self.scores.renew(claimant, ids, lease)
            except TransientError as exc:
                log.warning("could not renew the claim on %d scores; trying again: %s", len(ids), exc)

    async def _follow_claim(self, answer_id: str) -> None:
        """The answer is owed but another batch holds it: come back when that claim ends.

        A live batch renews its claim and then scores the answer (this job finds it done); a batch whose worker died
        leaves a claim that runs out, and then this job takes the answer."""
        state = await self.scores.state(answer_id)
        if state is None or state.status != SCORE_STATUS_PENDING or state.claimed_until is None:
            return
        wait = (state.claimed_until - datetime.now(UTC)).total_seconds()
        try:
            await self.queue.enqueue_score(answer_id, defer_seconds=max(0.0, wait) + 1.0)
        except TransientError as exc:
            log.warning("scoring of answer %s is deferred to the next worker start: %s", answer_id, exc)

    async def _score_batch(self, ids: list[str], last_try: bool = True) -> None:
        answers = [await self.answers.get(i) for i in ids]
        states = [await self.scores.state(i) for i in ids]
        inputs = [score_input(a, s.reference if s else None) for a, s in zip(answers, states, strict=True)]
        try:
            results = await self.scorer.score_many(inputs)
        except TransientError:
            raise
        except Exception:
            if len(ids) == 1:
                raise
            # One poison answer must not fail the whole batch: find it by scoring one at a time.
            log.exception("a batch of %d scores failed; scoring them one at a time", len(ids))
            for i in ids:
                try:
                    await self._score_batch([i], last_try)
                except TransientError:
                    raise
                except Exception as exc:
                    await self.scores.failed(i, f"internal error while scoring ({type(exc).__name__}: {exc})")
            return
        if not last_try and (reason := next((u for r in results if (u := r.unreachable())), None)):
            # The retry judges the batch again; what this attempt's judge spent is spent all the same.
            for i, result in zip(ids, results, strict=True):
                await self.scores.judge_spent(i, judge_tokens(result))
            raise TransientError(reason)
        for i, answer, s, result in zip(ids, answers, states, results, strict=True):
            if s is not None:
                await self.scores.save(i, score_result(with_chunk_ids(result, answer.contexts)), s.requests)

    async def recover(self) -> int:
        """Enqueue every owed score: a queue that died with the process (embedded Valkey) loses no score."""
        owed = await self.scores.pending()
        # Every job takes a batch of what is owed: one job per batch is enough.
        for answer_id in owed[:: self.settings.batch_size]:
            await self.queue.enqueue_score(answer_id)
        return len(owed)
