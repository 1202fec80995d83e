"""One suite for every CounterStore: in-process and Redis, time driven by the test's clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from llmrelay.stores.counters import BudgetState, CounterStore, Hold, Settle, Window
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


async def budget(store: CounterStore, key: str) -> tuple[int, int]:
    """(spent, reserved) of a budget, read by reserving 0 (which creates nothing new that
    matters: an empty budget reads (0, 0) either way)."""
    state = await store.reserve(key, 10**15, 0, 3600)
    return state.spent, state.reserved


def test_admit_counts_every_window_and_hold(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        rpm, tpm = Window("rpm", 3, 60, 1), Window("tpm", 1000, 60, 1)
        holds = [Hold("k", 1_000_000, 400_000, 3600), Hold("t", 900_000, 400_000, 3600)]
        r = await store.admit([rpm, tpm], [1, 300], holds)
        assert (r.ok, r.refused_window, r.retry_after_s, r.refused_hold, r.at) == (
            True,
            -1,
            0.0,
            -1,
            T0,
        )
        assert r.holds == (BudgetState(True, 0, 400_000), BudgetState(True, 0, 400_000))
        assert await admitted(store, [rpm, tpm], [2, 700])  # exactly what is left
        assert not await admitted(store, [rpm], [1])
        assert not await admitted(store, [tpm], [1])
        assert await budget(store, "k") == (0, 400_000)
        assert await budget(store, "t") == (0, 400_000)
        # Nothing to check at all is admitted.
        assert (await store.admit([], [], [])).ok

    stores.run(body)


def test_refused_hold_adds_nothing_to_the_windows_or_other_holds(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        rpm, tpm = Window("rpm", 10, 60, 1), Window("tpm", 1000, 60, 1)
        first = Hold("k", 1_000_000, 400_000, 3600)
        second = Hold("t", 500_000, 300_000, 3600)
        assert (await store.admit([rpm, tpm], [1, 100], [first, second])).ok
        refused = await store.admit([rpm, tpm], [1, 100], [first, second])
        assert (refused.ok, refused.refused_window, refused.refused_hold) == (False, -1, 1)
        # The first hold fit (its state as it stays), the second is refused on its counters.
        assert refused.holds == (BudgetState(True, 0, 400_000), BudgetState(False, 0, 300_000))
        assert await budget(store, "k") == (0, 400_000)
        assert await budget(store, "t") == (0, 300_000)
        assert await admitted(store, [rpm, tpm], [9, 900])  # the windows hold one call
        # A refused first hold ends the answer: later holds were not looked at.
        early = await store.admit([], [], [Hold("t", 500_000, 300_000, 3600), first])
        assert (early.refused_hold, early.holds) == (0, (BudgetState(False, 0, 300_000),))
        assert await budget(store, "k") == (0, 400_000)

    stores.run(body)


def test_refused_window_adds_nothing_to_the_holds(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        minute, hour = Window("m", 100, 60, 1), Window("h", 1, 3600, 60)
        hold = Hold("b", 1_000_000, 100_000, 3600)
        assert (await store.admit([minute, hour], [1, 1], [hold])).ok
        refused = await store.admit([minute, hour], [1, 1], [hold])
        assert (refused.ok, refused.refused_window, refused.refused_hold) == (False, 1, -1)
        assert refused.retry_after_s == pytest.approx((int(T0 // 60) + 60) * 60 - T0)
        assert refused.holds == ()
        assert refused.at == T0
        assert await budget(store, "b") == (0, 100_000)
        assert await admitted(store, [minute], [99])
        assert not await admitted(store, [minute], [1])
        # A refused window also creates no budget that did not exist.
        assert not (await store.admit([hour], [1], [Hold("fresh", 10, 1, 3600)])).ok
        assert await store.seed("fresh", 0, 3600)

    stores.run(body)


def test_admit_boundaries_are_inclusive(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        assert await store.seed("b", 250_000, 3600)
        exact = await store.admit([tpm], [1000], [Hold("b", 1_000_000, 750_000, 3600)])
        assert exact.holds == (BudgetState(True, 250_000, 750_000),)
        zero = await store.admit([tpm], [0], [Hold("b", 1_000_000, 0, 3600)])
        assert (zero.ok, zero.holds) == (True, (BudgetState(True, 250_000, 750_000),))
        one_more = await store.admit([], [], [Hold("b", 1_000_000, 1, 3600)])
        assert (one_more.ok, one_more.refused_hold) == (False, 0)
        assert not (await store.admit([tpm], [1], [])).ok
        # More than the whole budget never fits, and leaves no budget behind.
        assert not (await store.admit([], [], [Hold("fresh", 10, 11, 3600)])).ok
        assert await store.seed("fresh", 0, 3600)

    stores.run(body)


def test_audit_holds_never_refuse_and_reserve_only_what_fits(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        rpm = Window("rpm", 10, 60, 1)
        assert await store.seed("a", 900, 3600)
        over = Hold("a", 1000, 200, 3600, enforce=False)
        fits = Hold("e", 1000, 300, 3600)
        r = await store.admit([rpm], [1], [over, fits])
        assert (r.ok, r.refused_hold) == (True, -1)
        assert r.holds == (BudgetState(False, 900, 0), BudgetState(True, 0, 300))
        assert await budget(store, "a") == (900, 0)  # reserved 0
        assert await budget(store, "e") == (0, 300)
        # An audit hold that fits is reserved as usual.
        r = await store.admit([], [], [Hold("a", 1000, 100, 3600, enforce=False)])
        assert r.holds == (BudgetState(True, 900, 100),)
        # An audit hold over budget does not save a call an enforced hold refuses, and the
        # fitting audit hold before it is not reserved either.
        r = await store.admit(
            [rpm],
            [1],
            [Hold("x", 1000, 600, 3600, enforce=False), over, Hold("e", 1000, 701, 3600)],
        )
        assert (r.ok, r.refused_hold) == (False, 2)
        assert r.holds == (
            BudgetState(True, 0, 0),
            BudgetState(False, 900, 100),
            BudgetState(False, 0, 300),
        )
        assert await budget(store, "x") == (0, 0)
        assert await admitted(store, [rpm], [9])  # only the first call counted

    stores.run(body)


def test_release_is_add_then_settle(stores: Stores) -> None:
    """The same history settled with release() on keys ``r:*`` and with add() + settle()
    on keys ``a:*`` leaves the same counters."""

    async def body(store: CounterStore, clock: Clock) -> None:
        def tpm(ns: str) -> Window:
            return Window(f"{ns}:tpm", 1000, 60, 1)

        async def settle(
            ns: str, amounts: list[int], at: float | None, settles: list[Settle]
        ) -> None:
            scoped = [Settle(f"{ns}:{s.key}", s.reserved, s.actual, s.ttl_s) for s in settles]
            if ns == "r":
                await store.release([tpm(ns)] * len(amounts), amounts, at, scoped)
                return
            await store.add([tpm(ns)] * len(amounts), amounts, at)
            for s in scoped:
                await store.settle(s.key, s.reserved, s.actual, s.ttl_s)

        ats: dict[str, float] = {}
        for ns in "ar":
            r = await store.admit([tpm(ns)], [500], [Hold(f"{ns}:b", 1_000_000, 400_000, 3600)])
            ats[ns] = r.at
        clock.advance(30)
        for ns in "ar":
            assert await admitted(store, [tpm(ns)], [300])
        clock.advance(1)
        for ns in "ar":  # cheaper than estimated; spend on a budget nobody reserved on
            await settle(ns, [-400], ats[ns], [Settle("b", 400_000, 250_000, 3600)])
            await settle(ns, [], None, [Settle("new", 0, 5, 3600)])
            await settle(ns, [200], None, [Settle("b", 100, 0, 3600)])  # nothing reserved
        clock.advance(40)  # the estimate's bucket has left the window: its debit is dropped
        for ns in "ar":
            await settle(ns, [-100], ats[ns], [Settle("b", 0, 0, 3600)])
            at = (await store.acquire([tpm(ns)], [50])).at
            await settle(ns, [-80], at, [])  # never below zero
            await settle(ns, [-10], None, [])

        async def fingerprint(ns: str) -> list[Any]:
            seen: list[Any] = [await budget(store, f"{ns}:b"), await budget(store, f"{ns}:new")]
            for amount in (700, 200, 50, 10, 1):
                r = await store.acquire([tpm(ns)], [amount])
                seen.append((r.ok, round(r.retry_after_s, 6)))
            return seen

        assert await budget(store, "r:b") == (250_000, 0)
        assert await budget(store, "r:new") == (5, 0)
        assert await fingerprint("r") == await fingerprint("a")

    stores.run(body)


def test_release_takes_a_debit_from_the_bucket_of_at(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        tpm = Window("tpm", 1000, 60, 1)
        hold = Hold("b", 1_000_000, 500_000, 3600)
        estimate = await store.admit([tpm], [500], [hold])
        clock.advance(30)
        assert await admitted(store, [tpm], [300])
        clock.advance(1)
        await store.release([tpm], [-400], estimate.at, [Settle("b", 500_000, 300_000, 3600)])
        assert await budget(store, "b") == (300_000, 0)
        assert await admitted(store, [tpm], [600])
        assert not await admitted(store, [tpm], [1])
        clock.now = B0 + 60  # the estimate's bucket leaves: the 300 and the 600 remain
        assert await admitted(store, [tpm], [100])
        assert not await admitted(store, [tpm], [1])

    stores.run(body)


def test_admit_and_release_reject_bad_arguments(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        w = Window("w", 10, 60, 1)
        for windows, amounts, holds in [
            ([w], [1, 2], []),
            ([w], [-1], []),
            ([Window("odd", 10, 60, 7)], [1], []),
            ([], [], [Hold("b", 10, -1, 60)]),
            ([], [], [Hold("b", 10, 1, 60), Hold("b", 10, 1, 60)]),
        ]:
            with pytest.raises(ValueError):
                await store.admit(windows, amounts, holds)
        with pytest.raises(ValueError):
            await store.release([w], [1, 2], None, [])
        with pytest.raises(ValueError):
            await store.release([], [], None, [Settle("b", -1, 0, 60)])
        with pytest.raises(ValueError):
            await store.release([w], [1], None, [Settle("b", 0, -1, 60)])
        assert await admitted(store, [w], [10])  # nothing was counted by the refusals

    stores.run(body)


def test_concurrent_admits_never_exceed_the_budget(stores: Stores) -> None:
    """200 admits at once (on Redis through two clients) on a budget that fits 100."""

    async def body(store: CounterStore, clock: Clock) -> None:
        rpm = Window("rpm", 1000, 60, 1)
        holds = [Hold("big", 10**12, 1, 3600), Hold("b", 1_000_000, 10_000, 3600)]
        other = stores.open(clock) if stores.kind == "redis" else store
        try:
            results = await asyncio.gather(
                *(s.admit([rpm], [1], holds) for _ in range(100) for s in (store, other))
            )
        finally:
            if other is not store:
                await other.aclose()
        assert sum(r.ok for r in results) == 100
        assert {r.refused_hold for r in results if not r.ok} == {1}
        assert await budget(store, "b") == (0, 1_000_000)
        assert await budget(store, "big") == (0, 100)  # refused calls held nothing here
        assert await admitted(store, [rpm], [900])  # nor counted in the window
        assert not await admitted(store, [rpm], [1])

    stores.run(body)


def test_concurrent_admits_admit_exactly_the_window(stores: Stores) -> None:
    async def body(store: CounterStore, clock: Clock) -> None:
        rpm = Window("rpm", 60, 60, 1)
        hold = [Hold("b", 10**12, 7, 3600)]
        other = stores.open(clock) if stores.kind == "redis" else store
        try:
            results = await asyncio.gather(
                *(s.admit([rpm], [1], hold) for _ in range(100) for s in (store, other))
            )
        finally:
            if other is not store:
                await other.aclose()
        assert sum(r.ok for r in results) == 60
        assert {r.refused_window for r in results if not r.ok} == {0}
        assert await budget(store, "b") == (0, 60 * 7)

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
            assert (await store.admit([], [], [Hold("h", 10, 1, 120)])).ok
            assert 110_000 < await raw.pttl(key_prefix + "h") <= 120_000
            await store.release([], [], None, [Settle("u", 0, 1, 60)])
            assert 50_000 < await raw.pttl(key_prefix + "u") <= 60_000
        finally:
            await store.aclose()
            await raw.aclose()
            await delete_keys(redis_url, key_prefix)

    asyncio.run(main())


class CountingRedis(aioredis.Redis):
    """A Redis client that counts the commands it sends."""

    commands = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands += 1
        return await super().execute_command(*args, **options)


def test_redis_admit_and_release_are_one_command_each(redis_url: str, key_prefix: str) -> None:
    async def main() -> None:
        client = CountingRedis.from_url(redis_url)
        store = RedisCounterStore(client, prefix=key_prefix, clock=Clock())
        windows = [Window(f"w{i}", 100, 60, 1) for i in range(3)]
        holds = [Hold(f"b{i}", 10**9, 10, 3600) for i in range(2)]
        settles = [Settle(f"b{i}", 10, 8, 3600) for i in range(2)]
        try:
            await store.admit(windows, [1, 1, 1], holds)  # loads the scripts
            at = (await store.admit(windows, [1, 1, 1], holds)).at
            await store.release(windows[:1], [-1], at, settles)
            client.commands = 0
            assert (await store.admit(windows, [1, 1, 1], holds)).ok
            assert client.commands == 1
            await store.release(windows[:2], [-1, 5], at, settles)
            assert client.commands == 2
            await store.release(windows, [0, 0, 0], at, [Settle("b0", 0, 0, 3600)])
            assert client.commands == 2  # nothing to do: no round trip
        finally:
            await store.aclose()
            await client.aclose()
            await delete_keys(redis_url, key_prefix)

    asyncio.run(main())
