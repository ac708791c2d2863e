"""The one backoff rule of both job kinds (rag.worker): the base, doubling per attempt, at most the cap.

The regression it guards against is in tests/integration/test_job_outcomes.py (the score job ignored its setting);
this pins the rule itself, which ingestion and scoring used to compute each in its own way.
"""

from __future__ import annotations

import pytest

from rag.worker import INGEST_RETRY_CAP_SECONDS, SCORE_RETRY_CAP_SECONDS, backoff_seconds


@pytest.mark.parametrize(
    ("base", "attempt", "cap", "delay"),
    [
        (2.0, 1, INGEST_RETRY_CAP_SECONDS, 2.0),  # the first retry waits the base
        (2.0, 2, INGEST_RETRY_CAP_SECONDS, 4.0),
        (2.0, 4, INGEST_RETRY_CAP_SECONDS, 16.0),
        (2.0, 20, INGEST_RETRY_CAP_SECONDS, 300.0),
        (7.5, 2, SCORE_RETRY_CAP_SECONDS, 15.0),
        (7.5, 5, SCORE_RETRY_CAP_SECONDS, 60.0),
        (0.0, 3, SCORE_RETRY_CAP_SECONDS, 0.0),  # a base of 0 retries at once (tests, an operator's choice)
        (2.0, 0, INGEST_RETRY_CAP_SECONDS, 2.0),  # arq counts tries from 1; a 0 never makes the delay shorter
    ],
)
def test_backoff_doubles_from_the_base_up_to_the_cap(base: float, attempt: int, cap: float, delay: float) -> None:
    assert backoff_seconds(base, attempt, cap) == delay
