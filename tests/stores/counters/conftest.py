"""Fixtures for the counter store suite: a clock tests drive, and each store to run on.

Redis comes from ``LLMRELAY_TEST_REDIS_URL``; without it the Redis cases skip and say so.
Every test gets its own key prefix, and its keys are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from llmrelay.stores.counter_service import CounterService
from llmrelay.stores.counters import CounterStore
from llmrelay.stores.memory_counters import MemoryCounterStore
from llmrelay.stores.redis_counters import RedisCounterStore
from llmrelay.stores.socket_counters import SocketCounterStore

REDIS_ENV = "LLMRELAY_TEST_REDIS_URL"


class Clock:
    """Unix seconds that move only when a test says so."""

    def __init__(self, now: float = 1_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def delete_keys(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@dataclass
class Stores:
    """Opens the store under test (``kind``) on a clock; ``run`` drives one test body."""

    kind: str
    redis_url: str | None
    prefix: str

    def open(self, clock: Callable[[], float]) -> CounterStore:
        if self.redis_url is None:
            return MemoryCounterStore(clock)
        return RedisCounterStore(self.redis_url, prefix=self.prefix, clock=clock)

    def run(self, body: Callable[[CounterStore, Clock], Awaitable[None]]) -> None:
        asyncio.run(self._run(body))

    async def _run(self, body: Callable[[CounterStore, Clock], Awaitable[None]]) -> None:
        clock = Clock()
        if self.kind == "socket":
            await self._run_socket(body, clock)
            return
        store = self.open(clock)
        try:
            await body(store, clock)
        finally:
            await store.aclose()
            if self.redis_url is not None:
                await delete_keys(self.redis_url, self.prefix)

    async def _run_socket(
        self, body: Callable[[CounterStore, Clock], Awaitable[None]], clock: Clock
    ) -> None:
        """The supervisor's counter service (``--workers N``) and a worker's client to it."""
        run_dir = Path(tempfile.mkdtemp(prefix="llmrelay-test-"))
        service = CounterService(run_dir / "counters.sock", MemoryCounterStore(clock))
        await service.start()
        store = SocketCounterStore(run_dir / "counters.sock")
        try:
            await body(store, clock)
        finally:
            await store.aclose()
            await service.aclose()
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set: these tests need a real Redis")
    return url


@pytest.fixture
def key_prefix() -> str:
    return f"llmrelay-test:{uuid.uuid4().hex}:"


@pytest.fixture(params=["memory", "socket", "redis"])
def stores(request: pytest.FixtureRequest, key_prefix: str) -> Stores:
    if request.param in ("memory", "socket"):
        return Stores(request.param, None, key_prefix)
    return Stores("redis", request.getfixturevalue("redis_url"), key_prefix)
