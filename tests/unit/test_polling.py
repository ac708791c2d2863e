"""The tests' one poller: it returns what satisfied the condition, or fails naming what never happened."""

from __future__ import annotations

import pytest

from tests.support.polling import PollTimeout, poll, poll_sync


async def test_poll_returns_the_first_value_that_satisfies_the_condition():
    values = iter([1, 2, 3, 4])

    async def probe() -> int:
        return next(values)

    assert await poll(probe, lambda v: v >= 3, what="three", every_s=0) == 3


async def test_poll_fails_with_what_it_waited_for_and_the_last_value_seen():
    async def probe() -> dict:
        return {"status": "running"}

    # A zero limit: the first probe is the last, so nothing here depends on the clock.
    with pytest.raises(PollTimeout, match=r"gave up waiting for job j1 to finish after 0 s .*'status': 'running'"):
        await poll(probe, lambda job: job["status"] == "succeeded", what="job j1 to finish", limit_s=0)


def test_poll_sync_fails_the_same_way():
    with pytest.raises(PollTimeout, match=r"gave up waiting for the server after 0 s .*last seen: None"):
        poll_sync(lambda: None, bool, what="the server", limit_s=0)
    assert issubclass(PollTimeout, AssertionError)  # pytest reports a failed test, not an error
