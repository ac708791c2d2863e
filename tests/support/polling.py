"""The one way a test waits: poll until a condition holds, or fail saying what never happened and what was last seen.

The limit only guards against a hang (a stuck job must fail the test, not the CI job's timeout); nothing here is a
claim about speed, so it is generous and no test should pass a small one to assert latency.

`poll` is for the async tests, which share the service's event loop; `poll_sync` is for the few sync callers that
have no loop to await in (tests that drive a `rag serve` subprocess, and the llama.cpp server's start-up inside a
sync session fixture).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")

HANG_GUARD_S = 900.0
FINISHED = ("succeeded", "failed", "cancelled")


class PollTimeout(AssertionError):
    """What a test waited for did not happen: an AssertionError, so pytest reports a failed test, not an error."""


def _timeout(what: str, limit_s: float, last: object) -> PollTimeout:
    return PollTimeout(f"gave up waiting for {what} after {limit_s:g} s (a hang guard); last seen: {last!r}")


async def poll(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    what: str,
    limit_s: float = HANG_GUARD_S,
    every_s: float = 0.1,
) -> T:
    """Await `probe()` every `every_s` until `until(value)` holds; returns that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        value = await probe()
        if until(value):
            return value
        if loop.time() >= deadline:
            raise _timeout(what, limit_s, value)
        await asyncio.sleep(every_s)


def poll_sync(
    probe: Callable[[], T],
    until: Callable[[T], bool],
    *,
    what: str,
    limit_s: float = HANG_GUARD_S,
    every_s: float = 0.1,
) -> T:
    """`poll` for callers without an event loop."""
    deadline = time.monotonic() + limit_s
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _timeout(what, limit_s, value)
        time.sleep(every_s)


# ----- what the tests wait for, through the API -----------------------------------------------------------------
def _job_in(until: tuple[str, ...]) -> Callable[[dict], bool]:
    return lambda job: job["status"] in until


def _json(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


async def wait_job(client: httpx.AsyncClient, job_id: str, until: tuple[str, ...] = FINISHED) -> dict:
    """The job once its status is one of `until` (by default: once it has finished, either way)."""

    async def job() -> dict:
        return _json(await client.get(f"/v1/jobs/{job_id}"))

    return await poll(job, _job_in(until), what=f"job {job_id} to be {' or '.join(until)}")


def wait_job_sync(url: str, job_id: str, until: tuple[str, ...] = FINISHED) -> dict:
    """`wait_job` against a service process at `url`."""
    return poll_sync(
        lambda: _json(httpx.get(f"{url}/v1/jobs/{job_id}", timeout=60)),
        _job_in(until),
        what=f"job {job_id} to be {' or '.join(until)}",
    )


def _scored(after: str | None, scorer: str | None) -> Callable[[dict], bool]:
    def done(answer: dict) -> bool:
        scores = answer["scores"]
        return (
            scores["status"] == "done"
            and (after is None or str(scores["scored_at"]) > after)
            and (scorer is None or scores.get("scorer") == scorer)
        )

    return done


def _scored_what(answer_id: str, after: str | None, scorer: str | None) -> str:
    when = f" after {after}" if after else ""
    return f"answer {answer_id} to be scored{when}" + (f" by {scorer}" if scorer else "")


async def wait_scored(
    client: httpx.AsyncClient, answer_id: str, *, after: str | None = None, scorer: str | None = None
) -> dict:
    """The stored answer once its score is done (scored later than `after`, by `scorer`, when given)."""

    async def answer() -> dict:
        return _json(await client.get(f"/v1/answers/{answer_id}"))

    return await poll(answer, _scored(after, scorer), what=_scored_what(answer_id, after, scorer))


def wait_scored_sync(url: str, answer_id: str, *, after: str | None = None, scorer: str | None = None) -> dict:
    """`wait_scored` against a service process at `url`."""
    return poll_sync(
        lambda: _json(httpx.get(f"{url}/v1/answers/{answer_id}", timeout=60)),
        _scored(after, scorer),
        what=_scored_what(answer_id, after, scorer),
    )
