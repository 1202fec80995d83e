"""The usage recorder: a bounded in-memory queue drained in batches off the request path,
that loses no row while the disk holds.

- ``record()`` makes the row storable (:mod:`llmrelay.obs.sanitize`: strings cleaned and
  capped, numbers clamped), then queues it; it never blocks and never raises. When the
  queue is full the row goes to the spill file (:mod:`llmrelay.obs.spill`, appended by a
  task of its own in a worker thread; up to ``max(queue_size, 10000)`` rows wait in memory
  for it); only when the spill file is full too (or there is none, or the disk cannot keep
  up) is it dropped, and counted.
- A writer task takes up to ``batch_size`` rows at a time and hands them to the store in a
  worker thread. A batch the store refuses for its content
  (:class:`~llmrelay.stores.usage.RejectedRowsError`) is split in halves until the bad rows
  stand alone; a bad row is written once more in its reduced ASCII-only form, and if that is
  refused too it goes to the dead-letter file (:mod:`llmrelay.obs.dead_letter`). The rows
  behind it are not held up. Any other error is an outage: the same batch is retried with
  backoff (1 s doubling to 30 s) while new rows fill the queue, then the spill file.
- When the queue holds less than a batch, the writer replays the spill file into the store,
  one batch at a time, so a spill left by an outage (or by a previous run) drains once the
  store is back.
- ``aclose()`` keeps writing for ``shutdown_timeout_s``, then spills what is left in
  memory; the next start replays it.
- A row's captured bodies (the request log's, :mod:`llmrelay.obs.capture`) are rendered
  (assembled, redacted, cut) in the writer's thread just before its first write, and
  stored with it. They are expendable, the row is the bill: a row that goes to the spill
  or dead-letter file, or is stored in its reduced form, goes without them.

Counters (rows; read by metrics): ``written`` (stored, replayed ones included), ``replayed``
(stored from the spill file), ``spilled``, ``dead_lettered``, ``dropped`` (lost), ``reduced``
(stored in reduced form), ``sanitised`` (changed by ``record()``); ``failed_writes`` counts
writes failed by an outage; ``queue_depth`` is the rows held in memory.
Each kind of event is logged at most once a minute, with the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.settings import UsageConfig
from ..stores.usage import RejectedRowsError, RequestBodies, UsageRecord, UsageStore
from .dead_letter import DeadLetterFile
from .sanitize import make_storable, reduced
from .spill import SpillFile

__all__ = ["UsageRecorder"]

log = logging.getLogger("llmrelay.usage")

_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 30.0
_LOG_EVERY_S = 60.0
# Past the shutdown deadline, how long the write already in flight may still take: a store
# call is bounded by the store's own timeouts (5 s by default for SQLite's busy wait and for
# PostgreSQL's pool), so this is only a backstop.
_IN_FLIGHT_GRACE_S = 10.0
_MIB = 1024 * 1024
_MIN_OVERFLOW = 10_000
# Rows per spill append: about 8 ms of a worker thread (measured: 10k rows of ~450 bytes in
# 79 ms, fsync included), so the thread's hold on the interpreter stays short.
_SPILL_CHUNK = 1000


@dataclass(slots=True)
class _Chunk:
    """Rows to write together. ``ends`` is set for rows replayed from the spill file: the
    replay-file offset past each row, committed once the row is stored. ``original`` is set
    when ``rows`` is a refused row's reduced form."""

    rows: list[UsageRecord]
    ends: list[int] | None = None
    original: UsageRecord | None = None


class UsageRecorder:
    """Queues usage rows and writes them to ``store``; see the module docstring.

    ``spill`` and ``dead_letter`` are optional: without a spill file a full queue drops
    rows (counted), without a dead-letter file a row no store takes is dropped (counted).
    """

    def __init__(
        self,
        store: UsageStore,
        *,
        queue_size: int,
        batch_size: int,
        flush_interval_s: float,
        spill: SpillFile | None = None,
        dead_letter: DeadLetterFile | None = None,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        self._store = store
        self._queue: deque[UsageRecord] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._spill = spill
        self._dead_letter = dead_letter
        self._shutdown_timeout_s = shutdown_timeout_s
        # Rows that did not fit the queue, waiting for the spill task. Bounded so that a disk
        # slower than the traffic cannot take all memory; the bound is far above what
        # arrives between two turns of the spill task.
        self._overflow: list[UsageRecord] = []
        self._overflow_size = max(queue_size, _MIN_OVERFLOW)
        # Chunks taken for writing, the head one being written; a refused chunk splits here.
        self._pending: deque[_Chunk] = deque()
        self._wake = asyncio.Event()
        self._spill_wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._spill_task: asyncio.Task[None] | None = None
        self._spill_state: bool | None = None  # None: not opened yet; False: unusable
        self._flush_at = 0.0
        self._deadline = float("inf")
        self._closing = False
        self._closed = False
        self._logged: dict[str, float] = {}
        #: Rows written to the store (replayed and reduced ones included).
        self.written = 0
        #: Rows written to the store from the spill file.
        self.replayed = 0
        #: Rows appended to the spill file.
        self.spilled = 0
        #: Rows appended to the dead-letter file.
        self.dead_lettered = 0
        #: Rows lost: spill and dead-letter files full, missing or failing.
        self.dropped = 0
        #: Rows stored in their reduced ASCII-only form after the store refused them.
        self.reduced = 0
        #: Rows ``record()`` had to change to make storable.
        self.sanitised = 0
        #: Writes that failed for an outage (and were retried).
        self.failed_writes = 0

    @classmethod
    def from_config(
        cls,
        store: UsageStore,
        cfg: UsageConfig,
        source: str,
        own: Callable[[Path], Path] | None = None,
    ) -> UsageRecorder:
        """A recorder with the spill and dead-letter files of ``cfg`` (paths relative to the
        config file ``source``). ``own`` renames them for one worker of several
        (:meth:`llmrelay.workers.Worker.file_for`), so no two processes share a file."""
        spill = dead = None
        if cfg.spill_max_mb > 0:
            path = cfg.file(cfg.spill_path, ".spill.jsonl", source)
            spill = SpillFile(own(path) if own else path, int(cfg.spill_max_mb * _MIB))
        if cfg.dead_letter_max_mb > 0:
            path = cfg.file(cfg.dead_letter_path, ".dead-letter.jsonl", source)
            dead = DeadLetterFile(own(path) if own else path, int(cfg.dead_letter_max_mb * _MIB))
        return cls(
            store,
            queue_size=cfg.queue_size,
            batch_size=cfg.batch_size,
            flush_interval_s=cfg.flush_interval_s,
            spill=spill,
            dead_letter=dead,
            shutdown_timeout_s=cfg.shutdown_timeout_s,
        )

    @property
    def queue_depth(self) -> int:
        """Rows held in memory, not yet stored or spilled."""
        pending = sum(len(c.rows) for c in self._pending)
        return len(self._queue) + len(self._overflow) + pending

    def start(self) -> None:
        """Start the writer (and the spill task, which opens the spill file so that rows a
        previous run left there are replayed)."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="usage-writer")
        if self._spill is not None:
            self._spill_task = loop.create_task(self._spill_loop(), name="usage-spill")

    def record(self, row: UsageRecord) -> None:
        """Queue one row (which may be changed to make it storable); O(fields), never blocks
        and never raises."""
        try:
            if make_storable(row):
                self.sanitised += 1
        except Exception:  # make_storable does not raise; a row must never fail a request
            log.exception("usage row could not be made storable")
        if self._closed:
            self._record_late(row)
        elif len(self._queue) < self._queue_size:
            self._queue.append(row)
            if len(self._queue) >= self._batch_size:
                self._wake.set()
        elif self._spill is not None and len(self._overflow) < self._overflow_size:
            self._overflow.append(row)
            self._spill_wake.set()
        else:
            self._drop(1, "usage queue full, dropping rows")

    async def aclose(self) -> None:
        """Write what is queued for up to ``shutdown_timeout_s``, then spill the rest; stop
        the writer and the spill task."""
        if self._closed:
            return
        self._closing = True
        self._deadline = time.monotonic() + self._shutdown_timeout_s
        self._wake.set()
        self._stop.set()
        self._spill_wake.set()
        if self._task is not None:
            await self._end_writer(self._task)
        if self._spill_task is not None:
            with contextlib.suppress(Exception):
                await self._spill_task
        # Replayed chunks stay in the replay file past its committed offset: not spilled again.
        left = [r for c in self._pending if c.ends is None for r in c.rows]
        left += self._queue
        left += self._overflow
        self._pending.clear()
        self._queue.clear()
        self._overflow = []
        self._closed = True
        if left:
            await self._spill_rows(left)
        if self._spill is not None:
            self._spill.close()
        log.info("usage writer stopped", extra=self._counts())

    async def _end_writer(self, task: asyncio.Task[None]) -> None:
        try:
            await asyncio.wait_for(
                asyncio.shield(task), self._shutdown_timeout_s + _IN_FLIGHT_GRACE_S
            )
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.warning(
                "a usage write was still running at the shutdown deadline; its rows are"
                " spilled and may be stored twice",
                extra=self._counts(),
            )
        except Exception:
            log.exception("usage writer failed", extra=self._counts())

    # The writer.

    async def _run(self) -> None:
        backoff = _FIRST_BACKOFF_S
        while True:
            if self._closing and time.monotonic() >= self._deadline:
                return
            if not self._pending and not await self._next_chunk():
                return
            if await self._attempt(self._pending[0]):
                backoff = _FIRST_BACKOFF_S
                continue
            if self._closing:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    return
                await asyncio.sleep(min(backoff, remaining))
            else:
                # Cut short by aclose(), which then retries until its deadline.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _next_chunk(self) -> bool:
        """Put the next chunk in ``_pending``: a full batch from the queue; else a batch of
        the spill file; else, once the flush interval is up, what the queue holds. False
        when closing with nothing left in the queue."""
        while True:
            now = time.monotonic()
            n = len(self._queue)
            if n >= self._batch_size or (n and (self._closing or now >= self._flush_at)):
                self._flush_at = now + self._flush_interval_s
                take = min(n, self._batch_size)
                self._pending.append(_Chunk([self._queue.popleft() for _ in range(take)]))
                return True
            if self._closing:
                return False
            if await self._replay_chunk():
                return True
            self._wake.clear()
            wait = self._flush_at - now if n else self._flush_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.001))

    async def _replay_chunk(self) -> bool:
        """Put one batch of the spill file in ``_pending``; False when none waits."""
        spill = self._spill
        while spill is not None and self._spill_state and spill.waiting_bytes:
            try:
                batch = await asyncio.to_thread(spill.read_batch, self._batch_size)
            except OSError as err:
                self._spill_state = False
                log.error("usage spill file unreadable", extra={"error": _describe(err)})
                return False
            if batch is None:
                return False
            for line in batch.bad:
                await self._to_dead_letter(line, "unreadable spill line")
            if batch.rows:
                for row in batch.rows:
                    make_storable(row)  # the file may have been edited
                batch.ends[-1] = batch.end  # bad lines after the last row are done with too
                self._pending.append(_Chunk(batch.rows, batch.ends))
                return True
            await self._commit(batch.end)
        return False

    async def _attempt(self, chunk: _Chunk) -> bool:
        """Try to write the head chunk; False when the store is out (retry it later)."""
        try:
            await asyncio.to_thread(self._write, chunk.rows)
        except RejectedRowsError as err:
            await self._refused(chunk, err)
            return True
        except Exception as err:
            self.failed_writes += 1
            self._event(
                "outage",
                logging.ERROR,
                "usage write failed, will retry",
                error=_describe(err),
                rows=len(chunk.rows),
            )
            return False
        self._pending.popleft()
        self.written += len(chunk.rows)
        if chunk.original is not None:
            self.reduced += 1
        if chunk.ends is not None:
            self.replayed += len(chunk.rows)
            await self._commit(chunk.ends[-1])
            self._event("replayed", logging.INFO, "usage rows replayed from the spill file")
        return True

    def _write(self, rows: list[UsageRecord]) -> None:
        """Render pending bodies, then write (in a worker thread)."""
        for row in rows:
            bodies = row.bodies
            if bodies is not None and not isinstance(bodies, RequestBodies):
                try:
                    row.bodies = bodies.render(row)
                except Exception:  # a bug in rendering must not cost the row
                    row.bodies = None
                    log.exception(
                        "request bodies could not be rendered", extra={"request_id": row.request_id}
                    )
        self._store.write(rows)

    async def _refused(self, chunk: _Chunk, err: RejectedRowsError) -> None:
        """Split a refused chunk, or retry its one row reduced, or dead-letter that row."""
        rows, ends = chunk.rows, chunk.ends
        if len(rows) > 1:
            mid = len(rows) // 2
            self._pending.popleft()
            self._pending.extendleft(
                [
                    _Chunk(rows[mid:], ends[mid:] if ends else None),
                    _Chunk(rows[:mid], ends[:mid] if ends else None),
                ]
            )
            return
        if chunk.original is None:
            chunk.original, chunk.rows = rows[0], [reduced(rows[0])]
            self._event(
                "refused",
                logging.WARNING,
                "usage row refused by the store, writing it reduced",
                error=str(err),
                request_id=rows[0].request_id,
            )
            return
        self._pending.popleft()
        await self._to_dead_letter(chunk.original, f"RejectedRowsError: {err}")
        if ends is not None:
            await self._commit(ends[-1])

    async def _to_dead_letter(self, item: UsageRecord | bytes, reason: str) -> None:
        if isinstance(item, UsageRecord):
            item.bodies = None
        dead = self._dead_letter
        kept = False
        if dead is not None:
            try:
                if isinstance(item, bytes):
                    kept = await asyncio.to_thread(dead.add_line, item, reason)
                else:
                    kept = await asyncio.to_thread(dead.add_row, item, reason)
            except OSError as err:
                log.error("usage dead-letter file unwritable", extra={"error": _describe(err)})
        if not kept:
            self._drop(1, "usage row refused by the store and not kept, dropping it")
            return
        self.dead_lettered += 1
        self._event(
            "dead_letter",
            logging.ERROR,
            "usage row refused by the store, kept in the dead-letter file",
            path=str(dead.path) if dead else None,
            reason=reason,
        )

    async def _commit(self, offset: int) -> None:
        assert self._spill is not None
        try:
            await asyncio.to_thread(self._spill.commit, offset)
        except OSError as err:
            # The rows are stored; only a crash before the next commit would repeat them.
            log.error("usage spill offset not saved", extra={"error": _describe(err)})

    # The spill file.

    async def _spill_loop(self) -> None:
        await self._open_spill()
        while True:
            await self._spill_wake.wait()
            self._spill_wake.clear()
            while self._overflow:
                rows = self._overflow[:_SPILL_CHUNK]
                del self._overflow[:_SPILL_CHUNK]
                await self._spill_rows(rows)
            if self._closing:
                return

    async def _open_spill(self) -> None:
        if self._spill is None or self._spill_state is not None:
            return
        try:
            await asyncio.to_thread(self._spill.open)
        except OSError as err:
            self._spill_state = False
            log.error(
                "usage spill file unusable; a full queue will drop rows",
                extra={"path": str(self._spill.path), "error": _describe(err)},
            )
            return
        self._spill_state = True
        if self._spill.waiting_bytes:
            log.warning(
                "usage rows left in the spill file, replaying them",
                extra={"path": str(self._spill.path), "bytes": self._spill.waiting_bytes},
            )
        self._wake.set()

    async def _spill_rows(self, rows: list[UsageRecord]) -> None:
        for row in rows:
            row.bodies = None
        await self._open_spill()
        n = 0
        if self._spill is not None and self._spill_state:
            try:
                n = await asyncio.to_thread(self._spill.append, rows)
            except OSError as err:
                log.error("usage spill file unwritable", extra={"error": _describe(err)})
        if n:
            self.spilled += n
            self._event(
                "spilled",
                logging.WARNING,
                "usage rows spilled to disk, to be replayed",
                path=str(self._spill.path) if self._spill else None,
            )
        if len(rows) > n:
            self._drop(len(rows) - n, "usage queue and spill file full, dropping rows")

    def _record_late(self, row: UsageRecord) -> None:
        """A row recorded after :meth:`aclose`: appended to the spill file right away (this
        blocks, but only during shutdown)."""
        row.bodies = None
        n = 0
        if self._spill is not None and self._spill_state:
            with contextlib.suppress(OSError):
                n = self._spill.append([row])
        if n:
            self.spilled += 1
        else:
            self._drop(1, "usage row recorded after shutdown, dropping it")

    # Counts and logs.

    def _drop(self, n: int, message: str) -> None:
        self.dropped += n
        self._event("dropped", logging.WARNING, message)

    def _event(self, kind: str, level: int, message: str, **extra: Any) -> None:
        """Log ``message`` with the counters, at most once a minute per ``kind``."""
        now = time.monotonic()
        last = self._logged.get(kind)
        if last is not None and now - last < _LOG_EVERY_S:
            return
        self._logged[kind] = now
        log.log(level, message, extra={**self._counts(), **extra})

    def _counts(self) -> dict[str, int]:
        return {
            "written": self.written,
            "replayed": self.replayed,
            "spilled": self.spilled,
            "dead_lettered": self.dead_lettered,
            "dropped": self.dropped,
            "reduced": self.reduced,
            "queue_depth": self.queue_depth,
        }


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
