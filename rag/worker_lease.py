"""A worker whose claim on a running job is a short lease it renews, so a job whose worker died runs again soon.

arq marks a job it starts with an "in progress" key that expires after the job timeout plus 10 s; while that key
exists no other worker takes the job, and enqueueing it again is refused. With several worker processes, one that is
killed (out of memory, SIGKILL, a lost machine) would leave its job untouched for the whole job timeout (6 h by
default). Here the key lives `lease_seconds` and the live worker renews it every third of that, so after a worker
dies its jobs wait at most one lease before another worker runs them (their next try). The job's own run time is
still bounded by the job timeout; a job that runs twice is safe (ingestion jobs are idempotent, see
`ingestion.index`), it only costs time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class LeasedWorker(Worker):
    def __init__(self, *args: Any, lease_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lease_seconds = lease_seconds
        # arq sets a new job's in-progress key with this lifetime (the job timeout + 10 s by default).
        self.in_progress_timeout_s = lease_seconds

    async def main(self) -> None:
        keeper = asyncio.create_task(self._keep_leases(), name="arq-lease-keeper")
        try:
            await super().main()
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.renew_leases()
            except (RedisError, OSError) as exc:
                # The queue is away: the jobs cannot finish either; the next round tries again.
                log.warning("could not renew the leases of running jobs: %s", exc)

    async def renew_leases(self) -> int:
        """Extend the in-progress key of every job this worker is running; returns how many it extended."""
        running = [job_id for job_id, task in self.tasks.items() if not task.done()]
        if not running:
            return 0
        ttl_ms = int(self.lease_seconds * 1000)
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in running:
                # PEXPIRE on a key arq already deleted (the job just finished) does nothing: no lease is revived.
                pipe.pexpire(in_progress_key_prefix + job_id, ttl_ms)
            results = await pipe.execute()
        return sum(1 for r in results if r)
