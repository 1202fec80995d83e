"""Retention of the request log's captured bodies (``request_log.retention_days``).

A background task deletes bodies older than the retention, first a minute after start and
then every hour. Each run deletes in batches of 5,000 rows (one short transaction each,
with a pause between them, so the usage writer, which writes bodies too, never waits
long) and stops after 2,000 batches (10 million rows, a few minutes); what is left goes in
the next run. (At 100 batches a run, a gateway capturing more than ~140 bodies a second
would have added bodies faster than an hourly run removed them.) Usage rows are the
bill and are never deleted. Every instance sharing a PostgreSQL database prunes; a batch
another instance deleted first is simply found empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ..stores.usage import UsageStore

__all__ = ["BodyPruner"]

log = logging.getLogger("llmrelay.usage")

_DAY_S = 86400.0


class BodyPruner:
    """Deletes captured bodies older than ``retention_days`` from ``store``."""

    def __init__(
        self,
        store: UsageStore,
        retention_days: float,
        *,
        first_after_s: float = 60.0,
        interval_s: float = 3600.0,
        batch: int = 5000,
        max_batches: int = 2000,
        pause_s: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention_s = retention_days * _DAY_S
        self._first_after_s = first_after_s
        self._interval_s = interval_s
        self._batch = batch
        self._max_batches = max_batches
        self._pause_s = pause_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="body-pruner")

    async def aclose(self) -> None:
        """Stop the task; a batch being deleted finishes in its thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def prune_once(self) -> int:
        """One run: delete bodies older than the retention, in batches; the rows deleted.
        Raises the store's error."""
        before = self._clock() - self._retention_s
        total = 0
        for i in range(self._max_batches):
            if i:
                await asyncio.sleep(self._pause_s)
            n = await asyncio.to_thread(self._store.prune_bodies, before, self._batch)
            total += n
            if n < self._batch:
                break
        return total

    async def _run(self) -> None:
        await asyncio.sleep(self._first_after_s)
        while True:
            try:
                deleted = await self.prune_once()
            except Exception as err:
                log.warning(
                    "pruning request bodies failed; will retry",
                    extra={"error": f"{type(err).__name__}: {err}"},
                )
            else:
                if deleted:
                    log.info("request bodies pruned", extra={"deleted": deleted})
            await asyncio.sleep(self._interval_s)
