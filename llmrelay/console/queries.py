"""The console's and the console admin endpoints' reads, off the event loop and bounded.

Every store read runs in a daemon thread of its own (``stores.offload.in_daemon_thread``: a
stalled database holds that thread, never the event loop or the executor the usage writer
uses), at most :data:`MAX_CONCURRENT` at once, and waits at most ``timeout_s`` (waiting for
a slot included); past that the page or the API answers 503 with the reason. A read that
timed out may still hold its thread: while :data:`MAX_THREADS` are alive, further reads are
answered 503 at once. A console that is polled, or a database that is slow, cannot take the
request path down with it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ..config import Settings
from ..errors import InvalidRequestError, NotFoundError, ServiceUnavailable
from ..obs.metrics import Metrics
from ..obs.request_log import detail_json, encode_cursor, filter_from, record_json
from ..obs.target_stats import TargetStats
from ..obs.usage import UsageRecorder
from ..policy.admission import Policy
from ..policy.virtual_keys import key_json
from ..routing.router import Router
from ..stores.database import Stores
from ..stores.offload import in_daemon_thread
from ..stores.sqlite_usage import SQLiteUsageStore
from . import data

__all__ = ["MAX_CONCURRENT", "ConsoleGateway", "Queries"]

T = TypeVar("T")

#: Console reads running at once; more wait (within their timeout).
MAX_CONCURRENT = 4
#: Console read threads alive at once (timed-out reads included); more are refused.
MAX_THREADS = 16

_WRITER_COUNTS = ("written", "queue_depth", "spilled", "dropped", "dead_lettered", "failed_writes")


class ConsoleGateway(Protocol):
    """What the console reads of the gateway (``app.Gateway``)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def router(self) -> Router: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def recorder(self) -> UsageRecorder | None: ...
    @property
    def counters_failed_over(self) -> bool: ...
    @property
    def target_stats(self) -> TargetStats | None: ...

    def stores(self) -> Stores: ...


class _Live:
    """:class:`~llmrelay.console.data.LiveState` of a gateway."""

    def __init__(self, gw: ConsoleGateway) -> None:
        self._gw = gw
        self.counters_failed_over = gw.counters_failed_over

    def in_flight(self) -> int | None:
        metrics, stats = self._gw.metrics, self._gw.target_stats
        if metrics is not None:
            return metrics.in_flight
        return None if stats is None else stats.in_flight

    def usage_writer(self) -> dict[str, int]:
        recorder = self._gw.recorder
        if recorder is None:
            return {}
        return {n: int(getattr(recorder, n, 0)) for n in _WRITER_COUNTS}


class Queries:
    """The reads, each returning the JSON-ready dict the admin API serves and the pages
    render. Raise :class:`~llmrelay.errors.InvalidRequestError` for a bad parameter,
    :class:`~llmrelay.errors.NotFoundError`, or
    :class:`~llmrelay.errors.ServiceUnavailable` when the database does not answer in time;
    the driver's own error when it fails."""

    def __init__(self, gw: ConsoleGateway, timeout_s: float) -> None:
        self._gw = gw
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._threads = 0
        self._lock = threading.Lock()

    def _counted(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._threads -= 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a daemon thread, within the timeout."""
        try:
            async with asyncio.timeout(self._timeout_s), self._slots:
                with self._lock:
                    if self._threads >= MAX_THREADS:
                        raise ServiceUnavailable(
                            "the database is not answering (earlier console reads are still"
                            " waiting for it); try again later"
                        )
                    self._threads += 1
                return await in_daemon_thread(self._counted, fn, *args, name="llmrelay-console")
        except TimeoutError:
            raise ServiceUnavailable(
                f"the database did not answer within {self._timeout_s:g} s; try again"
            ) from None

    async def overview(self, query: Mapping[str, str]) -> dict[str, Any]:
        try:
            q = data.overview_query(query)
        except ValueError as err:
            raise InvalidRequestError(str(err)) from None
        settings = self._gw.settings
        scheme = settings.database_url().partition(":")[0]
        database = "postgresql" if scheme.startswith("postgres") else scheme
        usage = self._gw.stores().usage
        incident = usage.file_incident if isinstance(usage, SQLiteUsageStore) else None
        return await self.run(
            lambda: data.overview(
                usage,
                q,
                _Live(self._gw),
                redis=settings.redis is not None,
                database=database,
                database_incident=incident,
            )
        )

    async def budgets(self) -> dict[str, Any]:
        stores, settings = self._gw.stores(), self._gw.settings
        return await self.run(data.budgets, stores.keys, stores.usage, settings)

    def models(self) -> dict[str, Any]:
        """In memory: no thread."""
        router = self._gw.router
        gw = self._gw
        return data.models(
            gw.settings, router.health, router.latency, gw.policy.prices, gw.target_stats
        )

    async def keys(self) -> list[dict[str, Any]]:
        keys = await self.run(self._gw.stores().keys.list)
        now = time.time()
        return [key_json(k, now) for k in keys]

    async def key(self, key_id: str) -> dict[str, Any]:
        key = await self.run(self._gw.stores().keys.get, key_id)
        if key is None:
            raise NotFoundError(f"no key with id {key_id!r}")
        return key_json(key)

    async def requests(self, query: Mapping[str, str]) -> dict[str, Any]:
        try:
            where = filter_from(query)
        except ValueError as err:
            raise InvalidRequestError(str(err)) from None
        page = await self.run(self._gw.stores().usage.requests, where)
        return {
            "data": [record_json(item) for item in page.items],
            "next_cursor": encode_cursor(page.next_before_id),
        }

    async def request(self, request_id: str) -> dict[str, Any]:
        found = await self.run(self._gw.stores().usage.request, request_id)
        if found is None:
            raise NotFoundError(f"no request with id {request_id!r} in the request log")
        return detail_json(*found)
