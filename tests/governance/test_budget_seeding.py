"""Seeding a budget's counter from the usage store: one query per budget at a time, never a
call held past ``store_timeout_s``, and the last known figure (not $0) while the database
is away. Real SQLite and PostgreSQL usage stores; PostgreSQL is cut with a TcpProxy."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
import pytest

from llmrelay.errors import BudgetExceededError, ServiceUnavailable
from llmrelay.policy.budget import Budgets, period_of
from llmrelay.stores.counters import CounterStore
from llmrelay.stores.database import upgrade
from llmrelay.stores.failover_counters import FailoverCounterStore
from llmrelay.stores.keys import BudgetSpec
from llmrelay.stores.memory_counters import MemoryCounterStore
from llmrelay.stores.postgres_usage import PostgresUsageStore
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import SummaryField, UsageRecord, UsageStore, UsageSummaryRow
from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip, with_host_port
from tests.tcp_proxy import TcpProxy

T = TypeVar("T")
SPEC = BudgetSpec(usd=10.0, period="month")
MICRO = 1_000_000
# Hang guards, not timing assertions: a call must come back at all.
RETURNS_WITHIN_S = 20.0


def spend_row(key_id: str, cost: float, i: int = 0) -> UsageRecord:
    return UsageRecord(
        ts=time.time(),
        request_id=f"req_{key_id}_{i}",
        key_name=key_id,
        model="m",
        provider="p",
        provider_model="pm",
        endpoint="messages",
        stream=False,
        status=200,
        key_id=key_id,
        cost_usd=cost,
    )


class Gated:
    """A real usage store whose ``spend`` waits while the gate is closed, counting calls."""

    def __init__(self, inner: UsageStore) -> None:
        self.inner = inner
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def spend(self, scope: Literal["key", "team"], name: str, since: float) -> float:
        with self._lock:
            self.calls += 1
        self.gate.wait(RETURNS_WITHIN_S)
        return self.inner.spend(scope, name, since)

    def write(self, records: Sequence[UsageRecord]) -> None:
        self.inner.write(records)

    def summary(
        self, group_by: Sequence[SummaryField], since: float | None = None
    ) -> list[UsageSummaryRow]:
        return self.inner.summary(group_by, since)

    def rows(self) -> list[UsageRecord]:
        return self.inner.rows()

    def close(self) -> None:
        self.gate.set()
        self.inner.close()


@pytest.fixture(params=["sqlite", "postgres"])
def usage_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    if request.param == "sqlite":
        sqlite = SQLiteUsageStore(tmp_path / "usage.db")
        yield sqlite
        sqlite.close()
        return
    with fresh_pg_schema(postgres_url_or_skip()) as url:
        upgrade(url)
        pg = PostgresUsageStore.open(url)
        yield pg
        pg.close()


async def spent(counters: CounterStore, key: str) -> int:
    """The budget counter's spend (a zero reservation reads it)."""
    return (await counters.reserve(key, 10**15, 0, 3600)).spent


async def one_call(budgets: Budgets, counters: CounterStore, name: str, cost: float) -> str:
    """What the policy does for a call on key ``name``'s budget: hold, admit, settle."""
    hold = await budgets.prepare("key", name, SPEC, cost, time.time())
    admitted = await counters.admit((), (), [hold.hold])
    reservations = budgets.outcome([hold], admitted.holds)
    await counters.release((), (), None, budgets.settles(reservations, cost))
    return hold.hold.key


async def bounded(aw: Awaitable[T]) -> T:
    return await asyncio.wait_for(aw, RETURNS_WITHIN_S)


def spend_threads() -> set[threading.Thread]:
    """The spend query threads alive now."""
    return {t for t in threading.enumerate() if t.name == "llmrelay-spend"}


async def until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + RETURNS_WITHIN_S
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_first_calls_of_a_period_share_one_spend_query_and_keep_its_figure(
    usage_store: UsageStore,
) -> None:
    usage_store.write([spend_row("vk_a", 2.5)])
    gated = Gated(usage_store)
    counters = MemoryCounterStore()
    # A long store timeout: this test is about sharing the query, not about giving up.
    budgets = Budgets(counters, gated, store_timeout_s=RETURNS_WITHIN_S)

    async def main() -> None:
        gated.gate.clear()
        now = time.time()
        calls = [
            asyncio.create_task(budgets.prepare("key", "vk_a", SPEC, 0.01, now)) for _ in range(8)
        ]
        await until(lambda: gated.calls > 0)
        gated.gate.set()
        holds = await bounded(asyncio.gather(*calls))
        assert len(holds) == 8
        key = holds[0].hold.key
        assert gated.calls == 1 and budgets.spend.queries == 1
        assert await spent(counters, key) == 2_500_000
        # Seeded for the period: later calls read nothing.
        await one_call(budgets, counters, "vk_a", 0.5)
        assert gated.calls == 1
        assert await spent(counters, key) == 3_000_000
        # Another period is another figure, read once.
        next_month = period_of("month", now).end + 3600
        await budgets.prepare("key", "vk_a", SPEC, 0.01, next_month)
        assert gated.calls == 2

    asyncio.run(main())


def test_a_stalled_usage_store_seeds_from_the_last_figure_plus_local_spend(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteUsageStore(tmp_path / "usage.db")
    store.write([spend_row("vk_a", 9.0)])
    gated = Gated(store)
    counters = MemoryCounterStore()
    budgets = Budgets(counters, gated, store_timeout_s=0.05)

    async def main() -> None:
        key = await one_call(budgets, counters, "vk_a", 0.25)
        assert await spent(counters, key) == 9_250_000
        # The database stalls and the counter store loses its data (Redis restarted, or
        # the gateway moved to in-process counters): the next calls seed again.
        gated.gate.clear()
        before = spend_threads()
        await counters.aclose()
        budgets.forget_seeds()
        calls = [asyncio.create_task(budgets.prepare("key", "vk_a", SPEC, 0.01, time.time()))]
        calls += [
            asyncio.create_task(budgets.prepare("key", f"vk_{i}", SPEC, 0.01, time.time()))
            for i in range(6)
        ]
        await bounded(asyncio.gather(*calls))
        # 9.00 read before + 0.25 settled here: not $0.
        assert await spent(counters, key) == 9_250_000
        assert budgets.spend.down
        # A stalled database holds at most two query threads, however many budgets wait.
        assert 1 <= len(spend_threads() - before) <= 2
        # Calls go on, counted on the seeded figure, without waiting for the store.
        await bounded(one_call(budgets, counters, "vk_a", 0.5))
        assert await spent(counters, key) == 9_750_000
        text = caplog.text
        assert text.count("usage store unreachable: budgets count on from the last") == 1
        # Only the budgets nothing was known of say they count from $0.
        assert text.count("seeded at $0") == 6 and f"{key} seeded at $0" not in text
        # The store answers again: the stuck queries finish, and the next seed reads it.
        gated.gate.set()
        await until(lambda: not budgets.spend.down)
        assert "usage store reachable again" in caplog.text

    with caplog.at_level(logging.INFO, logger="llmrelay.budget"):
        asyncio.run(main())
    store.close()


@pytest.mark.parametrize("fail_closed", [False, True])
def test_a_budget_never_read_while_the_store_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fail_closed: bool
) -> None:
    store = SQLiteUsageStore(tmp_path / "usage.db")
    gated = Gated(store)
    gated.gate.clear()
    counters = MemoryCounterStore()
    budgets = Budgets(counters, gated, store_timeout_s=0.05, fail_closed=fail_closed)

    async def main() -> None:
        if fail_closed:
            with pytest.raises(ServiceUnavailable, match="fail_closed") as err:
                await bounded(budgets.prepare("key", "vk_new", SPEC, 0.01, time.time()))
            assert err.value.status == 503
            return
        hold = await bounded(budgets.prepare("key", "vk_new", SPEC, 0.01, time.time()))
        assert await spent(counters, hold.hold.key) == 0
        assert f"budget {hold.hold.key} seeded at $0" in caplog.text

    with caplog.at_level(logging.WARNING, logger="llmrelay.budget"):
        asyncio.run(main())
    gated.close()


@pytest.fixture
def pg_behind_proxy() -> Iterator[tuple[str, TcpProxy]]:
    with fresh_pg_schema(postgres_url_or_skip()) as url:
        upgrade(url)
        target = psycopg.conninfo.conninfo_to_dict(url)
        with TcpProxy(str(target.get("host", "127.0.0.1")), int(target.get("port", 5432))) as p:
            yield with_host_port(url, "127.0.0.1", p.port), p


@pytest.mark.parametrize("cut", ["kill", "blackhole"])
def test_postgres_cut_budgets_count_on_from_the_last_figure(
    pg_behind_proxy: tuple[str, TcpProxy], cut: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, proxy = pg_behind_proxy
    store = PostgresUsageStore.open(url, timeout_s=1.0)
    store.write([spend_row("vk_a", 9.0)])
    counters = MemoryCounterStore()
    budgets = Budgets(counters, store, store_timeout_s=0.25)

    async def main() -> None:
        key = await one_call(budgets, counters, "vk_a", 0.25)
        assert await spent(counters, key) == 9_250_000
        before = spend_threads()
        proxy.stop() if cut == "kill" else proxy.blackhole()
        await counters.aclose()
        budgets.forget_seeds()
        calls = [asyncio.create_task(one_call(budgets, counters, "vk_a", 0.05)) for _ in range(8)]
        calls += [
            asyncio.create_task(budgets.prepare("key", f"vk_{i}", SPEC, 0.01, time.time()))
            for i in range(6)
        ]
        await bounded(asyncio.gather(*calls))
        assert await spent(counters, key) == 9_650_000  # 9.25 known + 8 * 0.05
        # Nearly spent before the outage, nearly spent during it: a $0.50 call is refused.
        with pytest.raises(BudgetExceededError):
            await one_call(budgets, counters, "vk_a", 0.5)
        assert budgets.spend.down
        assert len(spend_threads() - before) <= 2
        proxy.start()
        # Budgets seed from the database again once it answers.
        await counters.aclose()
        deadline = time.monotonic() + RETURNS_WITHIN_S
        while budgets.spend.down:
            assert time.monotonic() < deadline, "the usage store never came back"
            budgets.forget_seeds()
            await budgets.prepare("key", "vk_a", SPEC, 0.01, time.time())
            await asyncio.sleep(0.2)
        assert caplog.text.count("usage store unreachable: budgets count on") == 1
        assert f"{key} seeded at $0" not in caplog.text
        assert "usage store reachable again" in caplog.text

    with caplog.at_level(logging.INFO, logger="llmrelay.budget"):
        asyncio.run(main())
    store.close()


class Flaky:
    """A counter store that raises ``ConnectionError`` (as Redis's does) while ``down``."""

    def __init__(self, inner: MemoryCounterStore) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any) -> Any:
            if self.down:
                raise ConnectionError("primary down")
            return await method(*args)

        return call


def test_a_second_outage_counts_on_from_the_last_figure_not_from_the_first_outage() -> None:
    now = [0.0]
    primary = Flaky(MemoryCounterStore())
    local = MemoryCounterStore()
    budgets: Budgets | None = None

    def moved(_: bool) -> None:
        assert budgets is not None
        budgets.forget_seeds()

    def seed_local(store: CounterStore) -> Awaitable[None]:
        assert budgets is not None
        return budgets.seed_local(store)

    failover = FailoverCounterStore(
        primary,  # type: ignore[arg-type]
        local,
        on_state=moved,
        on_local=seed_local,
        monotonic=lambda: now[0],
    )
    budgets = Budgets(failover, None)

    async def main() -> None:
        assert budgets is not None
        key = await one_call(budgets, failover, "vk_a", 1.0)
        # First outage: $1 on Redis, $1 more counted locally, by the very call that found
        # Redis gone (its budget was seeded before it was served).
        primary.down = True
        await one_call(budgets, failover, "vk_a", 1.0)
        assert await spent(local, key) == 2 * MICRO
        primary.down = False
        now[0] += 1.0  # the next call probes Redis and goes back to it
        for _ in range(3):
            await one_call(budgets, failover, "vk_a", 1.0)
        assert failover.using_primary
        assert await spent(primary.inner, key) == 5 * MICRO  # the outage's $1 replayed
        primary.down = True  # second outage: the local counters of the first are stale
        await one_call(budgets, failover, "vk_a", 1.0)
        assert await spent(local, key) == 6 * MICRO

    asyncio.run(main())
