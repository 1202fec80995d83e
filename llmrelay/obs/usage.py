"""The usage recorder: a bounded in-memory queue drained in batches off the request path.

``record()`` never blocks and never raises: when the queue is full the row is dropped,
counted in ``dropped`` and a warning is logged (at most once a minute). A writer task
takes up to ``batch_size`` rows at a time and hands them to the store in a worker thread.
A failed write is retried with backoff while the queue has room; rows are only counted as
lost when they cannot be kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from ..stores.usage import UsageRecord, UsageStore

__all__ = ["UsageRecorder"]

log = logging.getLogger("llmrelay.usage")

_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 30.0


class UsageRecorder:
    def __init__(
        self, store: UsageStore, *, queue_size: int, batch_size: int, flush_interval_s: float
    ) -> None:
        self._store = store
        self._queue: deque[UsageRecord] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_drop_warning = 0.0
        #: Rows dropped because the queue was full or the store kept failing.
        self.dropped = 0
        #: Rows written to the store.
        self.written = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-writer")

    def record(self, row: UsageRecord) -> None:
        """Queue one row; O(1), never blocks."""
        if len(self._queue) >= self._queue_size:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_warning > 60:
                self._last_drop_warning = now
                log.warning("usage queue full, dropping rows", extra={"dropped": self.dropped})
            return
        self._queue.append(row)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    async def _run(self) -> None:
        backoff = _FIRST_BACKOFF_S
        while True:
            if len(self._queue) < self._batch_size and not self._closing:
                # Let rows gather into a batch: wake on a full batch or after the interval.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            if not self._queue:
                if self._closing:
                    return
                continue
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            try:
                await asyncio.to_thread(self._store.write, batch)
            except Exception as err:
                # Put the batch back at the front while there is room; what does not fit is lost.
                room = max(0, self._queue_size - len(self._queue))
                keep = batch[:room]
                self.dropped += len(batch) - len(keep)
                self._queue.extendleft(reversed(keep))
                log.error(
                    "usage write failed, will retry",
                    extra={
                        "error": f"{type(err).__name__}: {err}",
                        "rows": len(batch),
                        "retry_in_s": backoff,
                        "dropped": self.dropped,
                    },
                )
                if self._closing:
                    self.dropped += len(self._queue)
                    self._queue.clear()
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            backoff = _FIRST_BACKOFF_S
            self.written += len(batch)

    async def aclose(self) -> None:
        """Write what is queued (one attempt per batch), then stop the writer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
