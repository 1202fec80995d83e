"""FailoverCounterStore over a real Redis behind a forwarder the test cuts and restores."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

from llmrelay.stores.counters import (
    Acquired,
    Admitted,
    BudgetState,
    CounterStore,
    Hold,
    Settle,
    Window,
)
from llmrelay.stores.failover_counters import CounterStoreUnavailable, FailoverCounterStore
from llmrelay.stores.memory_counters import MemoryCounterStore
from llmrelay.stores.redis_counters import RedisCounterStore
from tests.tcp_proxy import TcpProxy

from .conftest import Clock, delete_keys

RPM = Window("rpm", 1000, 60, 1)


class Counting:
    """A RedisCounterStore that counts the calls reaching it (to see probes being paced)."""

    def __init__(self, inner: RedisCounterStore) -> None:
        self.inner = inner
        self.calls = 0

    async def acquire(self, windows: Sequence[Window], amounts: Sequence[int]) -> Acquired:
        self.calls += 1
        return await self.inner.acquire(windows, amounts)

    async def add(
        self, windows: Sequence[Window], amounts: Sequence[int], at: float | None = None
    ) -> None:
        self.calls += 1
        await self.inner.add(windows, amounts, at)

    async def admit(
        self, windows: Sequence[Window], amounts: Sequence[int], holds: Sequence[Hold]
    ) -> Admitted:
        self.calls += 1
        return await self.inner.admit(windows, amounts, holds)

    async def release(
        self,
        windows: Sequence[Window],
        amounts: Sequence[int],
        at: float | None,
        settles: Sequence[Settle],
    ) -> None:
        self.calls += 1
        await self.inner.release(windows, amounts, at, settles)

    async def reserve(self, key: str, limit: int, amount: int, ttl_s: int) -> BudgetState:
        self.calls += 1
        return await self.inner.reserve(key, limit, amount, ttl_s)

    async def settle(self, key: str, reserved: int, actual: int, ttl_s: int) -> None:
        self.calls += 1
        await self.inner.settle(key, reserved, actual, ttl_s)

    async def seed(self, key: str, spent: int, ttl_s: int) -> bool:
        self.calls += 1
        return await self.inner.seed(key, spent, ttl_s)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Env:
    """A failover store on Redis through ``proxy``, a raw client on Redis itself, and the
    monotonic clock that paces probes."""

    def __init__(self, redis_url: str, proxy: TcpProxy, prefix: str, fail_closed: bool) -> None:
        parts = urlsplit(redis_url)
        via_proxy = urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))
        self.clock = Clock()
        self.mono = Clock(0.0)
        self.primary = Counting(RedisCounterStore(via_proxy, prefix=prefix, clock=self.clock))
        self.local = MemoryCounterStore(self.clock)
        self.states: list[bool] = []
        self.store = FailoverCounterStore(
            self.primary,
            self.local,
            on_state=self.states.append,
            monotonic=self.mono,
            fail_closed=fail_closed,
        )
        self.checked: CounterStore = self.store  # mypy: the wrapper is a CounterStore
        self.raw = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix

    async def redis_count(self, window: Window) -> int:
        counts = await self.raw.hvals(self.prefix + window.key)
        return sum(int(c) for c in counts)

    async def budget(self, key: str) -> tuple[int, int]:
        h = await self.raw.hgetall(self.prefix + key)
        return int(h.get(b"spent", 0)), int(h.get(b"reserved", 0))

    async def aclose(self) -> None:
        await self.store.aclose()
        await self.raw.aclose()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(redis_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as p:
        yield p


def run(
    redis_url: str,
    proxy: TcpProxy,
    prefix: str,
    body: Callable[[Env], Awaitable[None]],
    fail_closed: bool = False,
) -> None:
    async def main() -> None:
        env = Env(redis_url, proxy, prefix, fail_closed)
        try:
            await body(env)
        finally:
            await env.aclose()
            await delete_keys(redis_url, prefix)

    asyncio.run(main())


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def infos(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


def test_redis_down_serves_from_local_counters_and_recovers(
    redis_url: str, proxy: TcpProxy, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmrelay.stores")

    async def body(env: Env) -> None:
        for _ in range(3):
            assert (await env.store.acquire([RPM], [1])).ok
        assert await env.redis_count(RPM) == 3

        proxy.stop()  # mid-run: the live connections are cut too
        for _ in range(20):
            assert (await env.store.acquire([RPM], [1])).ok
        assert not env.store.using_primary
        assert env.states == [False]
        [warning] = warnings(caplog)
        assert warning.startswith("counter store unreachable, using in-process counters: ")
        # One failed call, then no call reaches Redis until the retry interval passes.
        assert env.primary.calls == 4

        env.mono.advance(1.0)
        assert (await env.store.acquire([RPM], [1])).ok  # the one probe: still down
        assert env.primary.calls == 5
        assert (await env.store.acquire([RPM], [1])).ok
        assert env.primary.calls == 5
        assert len(warnings(caplog)) == 1

        proxy.start()
        assert (await env.store.acquire([RPM], [1])).ok  # not yet time to probe: local
        assert await env.redis_count(RPM) == 3
        env.mono.advance(1.0)
        assert (await env.store.acquire([RPM], [1])).ok  # the probe succeeds
        assert env.store.using_primary
        assert env.states == [False, True]
        assert infos(caplog) == ["counter store reachable again, using shared counters"]
        assert (await env.store.acquire([RPM], [1])).ok
        assert await env.redis_count(RPM) == 5  # back on Redis; local counts not copied

    run(redis_url, proxy, key_prefix, body)


def test_fail_closed_refuses_admissions_while_redis_is_down(
    redis_url: str, proxy: TcpProxy, key_prefix: str
) -> None:
    async def body(env: Env) -> None:
        assert (await env.store.acquire([RPM], [1])).ok
        assert (await env.store.reserve("b", 1000, 100, 3600)).ok
        proxy.stop()
        with pytest.raises(CounterStoreUnavailable):
            await env.store.acquire([RPM], [1])
        with pytest.raises(CounterStoreUnavailable):
            await env.store.reserve("b", 1000, 100, 3600)
        with pytest.raises(CounterStoreUnavailable):
            await env.store.seed("c", 0, 3600)
        # Accounting for calls already made never raises.
        await env.store.add([RPM], [-1])
        await env.store.settle("b", 100, 80, 3600)
        proxy.start()
        env.mono.advance(1.0)
        assert (await env.store.acquire([RPM], [1])).ok
        assert await env.budget("b") == (80, 0)  # the settle was replayed

    run(redis_url, proxy, key_prefix, body, fail_closed=True)


def test_settle_releases_each_reservation_from_the_store_that_holds_it(
    redis_url: str, proxy: TcpProxy, key_prefix: str
) -> None:
    async def body(env: Env) -> None:
        limit = 1_000_000
        on_redis = await env.store.reserve("b", limit, 300_000, 3600)
        assert on_redis.ok
        proxy.stop()
        on_local = await env.store.reserve("b", limit, 200_000, 3600)
        assert on_local.ok
        assert not env.store.using_primary
        assert (await env.local.reserve("b", limit, 0, 3600)).reserved == 200_000

        await env.store.settle("b", 200_000, 150_000, 3600)  # the local one, while down
        await env.store.settle("b", 300_000, 250_000, 3600)  # the Redis one, while down
        local = await env.local.reserve("b", limit, 0, 3600)
        assert (local.spent, local.reserved) == (400_000, 0)
        assert await env.budget("b") == (0, 300_000)  # Redis still holds its reservation

        proxy.start()
        env.mono.advance(1.0)
        assert (await env.store.acquire([RPM], [1])).ok  # the probe; owed spend replayed
        assert await env.budget("b") == (400_000, 0)

        # A reservation made locally and settled after recovery releases locally only.
        proxy.stop()
        assert (await env.store.reserve("b", limit, 100_000, 3600)).ok
        proxy.start()
        env.mono.advance(1.0)
        assert (await env.store.reserve("b", limit, 50_000, 3600)).ok  # on Redis again
        await env.store.settle("b", 100_000, 90_000, 3600)
        assert await env.budget("b") == (490_000, 50_000)
        assert (await env.local.reserve("b", limit, 0, 3600)).reserved == 0

    run(redis_url, proxy, key_prefix, body)


def test_redis_down_from_the_start_never_raises_in_fail_open(
    redis_url: str, proxy: TcpProxy, key_prefix: str
) -> None:
    proxy.stop()

    async def body(env: Env) -> None:
        assert (await env.store.acquire([RPM], [1])).ok
        assert (await env.store.reserve("b", 10, 5, 60)).ok
        await env.store.settle("b", 5, 5, 60)
        assert await env.store.seed("c", 1, 60)
        await env.store.add([RPM], [2])
        assert env.states == [False]

    run(redis_url, proxy, key_prefix, body)


LIMIT = 1_000_000
TPM = Window("tpm", 100_000, 60, 1)


def hold(key: str, amount: int, limit: int = LIMIT, enforce: bool = True) -> Hold:
    return Hold(key, limit, amount, 3600, enforce)


def test_admit_and_release_settle_each_reservation_where_it_was_made(
    redis_url: str, proxy: TcpProxy, key_prefix: str
) -> None:
    async def body(env: Env) -> None:
        on_redis = await env.store.admit([RPM, TPM], [1, 500], [hold("b", 300_000)])
        assert on_redis.ok
        proxy.stop()
        on_local = await env.store.admit(
            [RPM, TPM], [1, 500], [hold("b", 200_000), hold("c", 100_000)]
        )
        assert on_local.ok
        assert not env.store.using_primary
        assert (await env.local.reserve("b", LIMIT, 0, 3600)).reserved == 200_000

        # Both calls end while Redis is down: the local holds are released locally, the
        # Redis one is owed to Redis, all spend is counted locally and owed to Redis.
        settles = [Settle("b", 200_000, 150_000, 3600), Settle("c", 100_000, 100_000, 3600)]
        await env.store.release([TPM], [-400], on_local.at, settles)
        await env.store.release([TPM], [-300], on_redis.at, [Settle("b", 300_000, 250_000, 3600)])
        local = await env.local.reserve("b", LIMIT, 0, 3600)
        assert (local.spent, local.reserved) == (400_000, 0)
        assert await env.budget("b") == (0, 300_000)
        assert await env.budget("c") == (0, 0)

        proxy.start()
        env.mono.advance(1.0)
        assert (await env.store.admit([RPM], [1], [])).ok  # the probe; owed spend replayed
        assert env.store.using_primary
        assert await env.budget("b") == (400_000, 0)
        assert await env.budget("c") == (100_000, 0)

        # A hold made locally and settled after recovery is released locally only.
        proxy.stop()
        assert (await env.store.admit([], [], [hold("b", 100_000)])).ok
        proxy.start()
        env.mono.advance(1.0)
        assert (await env.store.admit([], [], [hold("b", 50_000)])).ok  # on Redis again
        await env.store.release([], [], None, [Settle("b", 100_000, 90_000, 3600)])
        assert await env.budget("b") == (490_000, 50_000)
        assert (await env.local.reserve("b", LIMIT, 0, 3600)).reserved == 0

    run(redis_url, proxy, key_prefix, body)


def test_local_admit_books_only_the_holds_it_reserved(
    redis_url: str, proxy: TcpProxy, key_prefix: str
) -> None:
    """A refused local admit, and an audit hold that did not fit, reserve nothing locally:
    later settles of the same keys must release from Redis."""

    async def body(env: Env) -> None:
        proxy.stop()
        refused = await env.store.admit([], [], [hold("b", 70_000), hold("z", 10, limit=5)])
        assert (refused.ok, refused.refused_hold) == (False, 1)
        audit = await env.store.admit([], [], [hold("a", 10, limit=5, enforce=False)])
        assert audit.ok
        assert not audit.holds[0].ok
        proxy.start()
        env.mono.advance(1.0)
        assert (await env.store.admit([], [], [hold("b", 70_000), hold("a", 10)])).ok
        assert env.store.using_primary
        assert await env.budget("b") == (0, 70_000)
        await env.store.release(
            [], [], None, [Settle("b", 70_000, 60_000, 3600), Settle("a", 10, 0, 3600)]
        )
        assert await env.budget("b") == (60_000, 0)
        assert await env.budget("a") == (0, 0)

    run(redis_url, proxy, key_prefix, body)


def test_fail_closed_refuses_admit_but_release_never_raises(
    redis_url: str, proxy: TcpProxy, key_prefix: str
) -> None:
    async def body(env: Env) -> None:
        taken = await env.store.admit([RPM, TPM], [1, 100], [hold("b", 100)])
        assert taken.ok
        proxy.stop()
        with pytest.raises(CounterStoreUnavailable):
            await env.store.admit([RPM], [1], [hold("b", 100)])
        with pytest.raises(CounterStoreUnavailable):
            await env.store.admit([], [], [hold("b", 100)])
        await env.store.release([TPM], [-50], taken.at, [Settle("b", 100, 80, 3600)])
        proxy.start()
        env.mono.advance(1.0)
        assert (await env.store.admit([RPM], [1], [])).ok
        assert await env.budget("b") == (80, 0)  # the settle was replayed
        assert await env.redis_count(TPM) == 100  # the token debit stayed local

    run(redis_url, proxy, key_prefix, body, fail_closed=True)


def test_redis_down_from_the_start_admit_and_release_never_raise(
    redis_url: str, proxy: TcpProxy, key_prefix: str
) -> None:
    proxy.stop()

    async def body(env: Env) -> None:
        r = await env.store.admit([RPM, TPM], [1, 10], [hold("b", 5, limit=10)])
        assert r.ok
        assert r.holds == (BudgetState(True, 0, 5),)
        await env.store.release([TPM], [-5], r.at, [Settle("b", 5, 5, 60)])
        assert (await env.local.reserve("b", 10, 0, 60)).spent == 5
        assert env.states == [False]

    run(redis_url, proxy, key_prefix, body)


def test_owed_spend_is_replayed_one_round_trip_per_batch(
    redis_url: str, proxy: TcpProxy, key_prefix: str
) -> None:
    async def body(env: Env) -> None:
        proxy.stop()
        settles = [Settle(f"b{i}", 0, i + 1, 3600) for i in range(20)]
        await env.store.release([], [], None, settles)  # fails over; all 20 owed
        proxy.start()
        env.mono.advance(1.0)
        calls = env.primary.calls
        assert (await env.store.admit([RPM], [1], [])).ok  # the probe, then 16 keys
        assert env.primary.calls == calls + 2
        assert (await env.store.admit([RPM], [1], [])).ok  # the last 4
        assert env.primary.calls == calls + 4
        assert (await env.store.admit([RPM], [1], [])).ok  # nothing left owed
        assert env.primary.calls == calls + 5
        assert [await env.budget(f"b{i}") for i in range(20)] == [(i + 1, 0) for i in range(20)]

    run(redis_url, proxy, key_prefix, body)


def test_connections_redis_closed_are_replaced_without_a_failover(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis restart, failover, idle timeout or CLIENT KILL closes pooled connections while
    Redis is up: the next calls reconnect, they do not fail over to local counters."""
    caplog.set_level(logging.INFO, logger="llmrelay.stores")
    name = "llmrelay-" + key_prefix.replace(":", "-").strip("-")

    async def main() -> None:
        primary = RedisCounterStore(redis_url, prefix=key_prefix, client_name=name)
        store = FailoverCounterStore(primary, MemoryCounterStore())
        raw = aioredis.Redis.from_url(redis_url)
        try:
            results = await asyncio.gather(*(store.acquire([RPM], [1]) for _ in range(8)))
            assert all(r.ok for r in results)
            mine = [c for c in await raw.client_list() if c.get("name") == name]
            assert mine, "the store's connections carry its client name"
            for c in mine:
                await raw.client_kill_filter(_id=c["id"])
            results = await asyncio.gather(*(store.acquire([RPM], [1]) for _ in range(8)))
            assert all(r.ok for r in results)
            assert store.using_primary
            assert warnings(caplog) == []
            counts = await raw.hvals(key_prefix + RPM.key)
            assert sum(int(c) for c in counts) == 16
        finally:
            await store.aclose()
            await raw.aclose()
            await delete_keys(redis_url, key_prefix)

    asyncio.run(main())
