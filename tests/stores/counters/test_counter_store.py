"""One suite for every CounterStore: in-process and Redis, time driven by the test's clock."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from llmrelay.stores.counters import CounterStore, Window
from llmrelay.stores.memory_counters import MemoryCounterStore
from llmrelay.stores.redis_counters import RedisCounterStore

from .conftest import Clock, Stores, delete_keys

T0 = 1_000_000.25  # the clock's start; bucket 1_000_000 of a 1 s bucket
B0 = 1_000_000


async def admitted(store: CounterStore, windows: list[Window], amounts: list[int]) -> bool:
    return (await store.acquire(windows, amounts)).ok


def test_single_window_admits_exactly_the_limit(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        rpm = Window("rpm", 60, 60, 1)
        oks = [(await store.acquire([rpm], [1])).ok for _ in range(60)]
        assert all(oks)
        refused = await store.acquire([rpm], [1])
        assert not refused.ok
        assert refused.refused == 0
        # The one bucket holding all 60 leaves the window at B0 + 60.
        assert refused.retry_after_s == pytest.approx(B0 + 60 - T0)
        clock.now = B0 + 59.99
        assert not await admitted(store, [rpm], [1])
        clock.now = B0 + 60
        assert await admitted(store, [rpm], [1])

    stores.run(body)


def test_window_slides_one_bucket_at_a_time(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        w = Window("slide", 10, 10, 1)
        assert await admitted(store, [w], [4])  # bucket B0
        clock.advance(3.5)
        assert await admitted(store, [w], [6])  # bucket B0 + 3
        clock.now = B0 + 5.25
        one = await store.acquire([w], [1])
        assert one.retry_after_s == pytest.approx(B0 + 10 - clock.now)  # B0 leaving is enough
        five = await store.acquire([w], [5])
        assert five.retry_after_s == pytest.approx(B0 + 13 - clock.now)  # B0 + 3 must leave too
        clock.now = B0 + 10.0  # B0 has left, B0 + 3 is still in
        assert await admitted(store, [w], [4])
        again = await store.acquire([w], [1])
        assert not again.ok
        assert again.retry_after_s == pytest.approx(3.0)

    stores.run(body)


def test_refused_window_adds_nothing_to_the_others(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        minute = Window("m", 100, 60, 1)
        hour = Window("h", 5, 3600, 60)
        for _ in range(5):
            assert await admitted(store, [minute, hour], [1, 1])
        refused = await store.acquire([minute, hour], [1, 1])
        assert (refused.ok, refused.refused) == (False, 1)
        hour_bucket = int(T0 // 60)
        assert refused.retry_after_s == pytest.approx((hour_bucket + 60) * 60 - T0)
        # The minute window holds the 5 admitted calls and nothing of the refused one.
        assert await admitted(store, [minute], [95])
        assert not await admitted(store, [minute], [1])
        # The first refusing window is the one reported.
        assert (await store.acquire([hour, minute], [1, 1])).refused == 0

    stores.run(body)


def test_amounts_count_tokens(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        assert await admitted(store, [tpm], [400])
        clock.advance(1)
        assert await admitted(store, [tpm], [600])
        clock.advance(1)
        one = await store.acquire([tpm], [1])
        assert one.retry_after_s == pytest.approx(B0 + 60 - clock.now)
        more = await store.acquire([tpm], [401])
        assert more.retry_after_s == pytest.approx(B0 + 61 - clock.now)

    stores.run(body)


def test_amount_larger_than_the_limit_never_passes(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        rpm = Window("rpm", 10, 60, 1)
        too_big = await store.acquire([rpm, tpm], [1, 1001])
        assert (too_big.ok, too_big.refused, too_big.retry_after_s) == (False, 1, 60.0)
        assert await admitted(store, [rpm, tpm], [1, 1000])

    stores.run(body)


def test_debit_comes_off_the_bucket_it_was_counted_in(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        estimate = await store.acquire([tpm], [500])
        clock.advance(30)
        assert await admitted(store, [tpm], [300])
        clock.advance(1)
        await store.add([tpm], [-400], at=estimate.at)  # used 100 of the 500
        assert await admitted(store, [tpm], [600])
        assert not await admitted(store, [tpm], [1])
        # Once the estimate's bucket leaves, only the 300 and the 600 remain. Had the debit
        # come off the newer buckets, 400 more would pass here.
        clock.now = B0 + 60
        assert await admitted(store, [tpm], [100])
        assert not await admitted(store, [tpm], [1])

    stores.run(body)


def test_debit_after_its_bucket_left_the_window_is_dropped(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        estimate = await store.acquire([tpm], [500])
        clock.advance(50)
        assert await admitted(store, [tpm], [300])
        clock.advance(20)  # a 70 s call: its estimate already stopped counting
        await store.add([tpm], [-400], at=estimate.at)
        assert await admitted(store, [tpm], [700])
        assert not await admitted(store, [tpm], [1])

    stores.run(body)


def test_debit_never_takes_a_bucket_below_zero(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        estimate = await store.acquire([tpm], [100])
        await store.add([tpm], [-500], at=estimate.at)
        assert await admitted(store, [tpm], [1000])
        assert not await admitted(store, [tpm], [1])

    stores.run(body)


def test_debit_without_at_comes_off_the_current_bucket(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        assert await admitted(store, [tpm], [500])
        clock.advance(1)
        assert await admitted(store, [tpm], [300])
        await store.add([tpm], [-400])  # the current bucket holds 300: it goes to 0
        assert await admitted(store, [tpm], [500])
        assert not await admitted(store, [tpm], [1])

    stores.run(body)


def test_positive_add_counts_past_the_limit(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        assert await admitted(store, [tpm], [900])
        await store.add([tpm], [300])  # used more than estimated
        over = await store.acquire([tpm], [0])
        assert not over.ok
        assert over.retry_after_s == pytest.approx(B0 + 60 - T0)

    stores.run(body)


def test_budget_admits_up_to_the_limit_inclusive(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        state = await store.reserve("b", 1_000_000, 400_000, 3600)
        assert (state.ok, state.spent, state.reserved) == (True, 0, 400_000)
        state = await store.reserve("b", 1_000_000, 600_000, 3600)  # equality admits
        assert (state.ok, state.spent, state.reserved) == (True, 0, 1_000_000)
        state = await store.reserve("b", 1_000_000, 1, 3600)  # one micro-USD more refuses
        assert (state.ok, state.spent, state.reserved) == (False, 0, 1_000_000)
        assert (await store.reserve("fresh", 10, 11, 3600)).ok is False
        assert await store.seed("s", 250_000, 3600)
        assert (await store.reserve("s", 1_000_000, 750_000, 3600)).ok
        assert not (await store.reserve("s", 1_000_000, 1, 3600)).ok

    stores.run(body)


def test_settle_moves_a_reservation_to_spent(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        assert (await store.reserve("b", 1_000_000, 500_000, 3600)).ok
        await store.settle("b", 500_000, 300_000, 3600)  # cheaper than reserved
        state = await store.reserve("b", 1_000_000, 0, 3600)
        assert (state.spent, state.reserved) == (300_000, 0)
        assert (await store.reserve("b", 1_000_000, 200_000, 3600)).ok
        await store.settle("b", 200_000, 450_000, 3600)  # dearer than reserved
        state = await store.reserve("b", 1_000_000, 0, 3600)
        assert (state.spent, state.reserved) == (750_000, 0)
        await store.settle("b", 100, 0, 3600)  # nothing reserved: stays at zero
        state = await store.reserve("b", 1_000_000, 250_000, 3600)
        assert (state.ok, state.spent, state.reserved) == (True, 750_000, 250_000)
        assert not (await store.reserve("b", 1_000_000, 1, 3600)).ok
        await store.settle("new", 0, 5, 3600)  # spend on a budget nobody reserved on
        assert (await store.reserve("new", 10, 0, 3600)).spent == 5

    stores.run(body)


def test_seed_sets_spent_only_when_absent(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        assert await store.seed("b", 42, 3600)
        assert not await store.seed("b", 7, 3600)
        state = await store.reserve("b", 100, 58, 3600)
        assert (state.ok, state.spent) == (True, 42)
        assert (await store.reserve("c", 10, 5, 3600)).ok
        assert not await store.seed("c", 1, 3600)
        assert (await store.reserve("c", 10, 0, 3600)).spent == 0

    stores.run(body)


def test_bad_arguments_raise_value_error(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        w = Window("w", 10, 60, 1)
        with pytest.raises(ValueError):
            await store.acquire([w], [1, 2])
        with pytest.raises(ValueError):
            await store.acquire([w], [-1])
        with pytest.raises(ValueError):
            await store.acquire([Window("odd", 10, 60, 7)], [1])
        with pytest.raises(ValueError):
            await store.reserve("b", 10, -1, 60)
        with pytest.raises(ValueError):
            await store.settle("b", -1, 0, 60)

    stores.run(body)


def test_concurrent_acquires_admit_exactly_the_limit(stores: Stores) -> None:
    """200 calls at once on a limit of 60; on Redis through two clients, as two instances."""

    async def body(store: CounterStore, clock: Clock) -> None:
        rpm = Window("rpm", 60, 60, 1)
        other = stores.open(clock) if stores.kind == "redis" else store
        try:
            results = await asyncio.gather(
                *(s.acquire([rpm], [1]) for _ in range(100) for s in (store, other))
            )
        finally:
            if other is not store:
                await other.aclose()
        assert sum(r.ok for r in results) == 60

    stores.run(body)


def test_concurrent_reservations_never_exceed_the_budget(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        other = stores.open(clock) if stores.kind == "redis" else store
        try:
            results = await asyncio.gather(
                *(
                    s.reserve("b", 1_000_000, 10_000, 3600)
                    for _ in range(100)
                    for s in (store, other)
                )
            )
        finally:
            if other is not store:
                await other.aclose()
        assert sum(r.ok for r in results) == 100
        assert max(r.reserved for r in results) == 1_000_000

    stores.run(body)


def test_memory_store_forgets_idle_windows_and_budgets() -> None:
    async def main() -> None:
        clock = Clock()
        store = MemoryCounterStore(clock, sweep_interval_s=60)
        assert await admitted(store, [Window("a", 10, 60, 1)], [1])
        assert (await store.reserve("b", 10, 1, 100)).ok
        assert len(store) == 2
        clock.advance(100)  # the budget's ttl is up: it reads as absent
        assert await store.seed("b", 0, 100)
        clock.advance(200)  # both expired; the next call sweeps
        assert await admitted(store, [Window("c", 10, 60, 1)], [1])
        assert len(store) == 1

    asyncio.run(main())


def test_redis_keys_expire_and_old_buckets_are_deleted(redis_url: str, key_prefix: str) -> None:
    async def main() -> None:
        clock = Clock()
        store = RedisCounterStore(redis_url, prefix=key_prefix, clock=clock)
        raw = aioredis.Redis.from_url(redis_url)
        try:
            w = Window("w", 10, 60, 1)
            assert await admitted(store, [w], [1])
            assert 60_000 < await raw.pttl(key_prefix + "w") <= 61_000
            clock.advance(61)
            assert await admitted(store, [w], [1])
            assert await raw.hlen(key_prefix + "w") == 1  # the old bucket was deleted
            assert (await store.reserve("b", 10, 1, 3600)).ok
            assert 3_590_000 < await raw.pttl(key_prefix + "b") <= 3_600_000
            assert await store.seed("s", 1, 60)
            assert 50_000 < await raw.pttl(key_prefix + "s") <= 60_000
            await store.settle("t", 0, 1, 60)
            assert 50_000 < await raw.pttl(key_prefix + "t") <= 60_000
        finally:
            await store.aclose()
            await raw.aclose()
            await delete_keys(redis_url, key_prefix)

    asyncio.run(main())
