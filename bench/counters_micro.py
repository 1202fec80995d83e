"""Microbenchmark: the counter store calls of one governed call, through RedisCounterStore.

One call with 3 rate-limit windows and 2 budgets costs, per-method, an ``acquire``, two
``reserve``, an ``add`` (token estimate -> actual) and two ``settle``; with the one-trip
methods an ``admit`` and a ``release``. Each operation runs ``--rounds`` rounds of ``--n``
calls in a row on one event loop; the figures are the best round's wall time and this
process's CPU time per call (µs), so Redis's own CPU is not counted.

    .venv/bin/python bench/counters_micro.py --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from llmrelay.stores.counters import Hold, Settle, Window
from llmrelay.stores.redis_counters import RedisCounterStore

WINDOWS = [
    Window("rl:key:b:rpm", 10**9, 60, 1),
    Window("rl:key:b:tpm", 10**12, 60, 1),
    Window("rl:team:b:rpd", 10**9, 86400, 1440),
]
AMOUNTS = [1, 500, 1]
BUDGETS = ["bg:key:b:month:x", "bg:team:b:month:x"]
LIMIT = 10**15


async def measure(name: str, n: int, op: Callable[[], Awaitable[object]], rounds: int) -> None:
    """Run ``op`` ``n`` times per round; print the best round's wall and CPU µs per call
    (the least disturbed by other processes on a shared machine)."""
    for _ in range(min(n, 200)):  # warm-up: connections, script cache
        await op()
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            await op()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    print(f"{name:<34} {best_wall / n * 1e6:7.0f} us wall {best_cpu / n * 1e6:7.0f} us CPU")


async def main(url: str, n: int, rounds: int) -> None:
    prefix = f"llmrelay-bench:{uuid.uuid4().hex}:"
    store = RedisCounterStore(url, prefix=prefix)
    try:
        at = (await store.acquire(WINDOWS, AMOUNTS)).at

        async def per_method_admit() -> None:
            await store.acquire(WINDOWS, AMOUNTS)
            for key in BUDGETS:
                await store.reserve(key, LIMIT, 1000, 3600)

        async def per_method_settle() -> None:
            await store.add(WINDOWS[1:2], [-100], at)
            for key in BUDGETS:
                await store.settle(key, 1000, 900, 3600)

        await measure("acquire (3 windows)", n, lambda: store.acquire(WINDOWS, AMOUNTS), rounds)
        await measure("reserve", n, lambda: store.reserve(BUDGETS[0], LIMIT, 1000, 3600), rounds)
        await measure("settle", n, lambda: store.settle(BUDGETS[0], 1000, 900, 3600), rounds)
        await measure("add (1 window)", n, lambda: store.add(WINDOWS[1:2], [-100], at), rounds)
        await measure("acquire + 2 reserve", n, per_method_admit, rounds)
        await measure("add + 2 settle", n, per_method_settle, rounds)
        holds = [Hold(key, LIMIT, 1000, 3600) for key in BUDGETS]
        settles = [Settle(key, 1000, 900, 3600) for key in BUDGETS]
        await measure(
            "admit (3 windows, 2 holds)", n, lambda: store.admit(WINDOWS, AMOUNTS, holds), rounds
        )
        await measure(
            "release (1 window, 2 settles)",
            n,
            lambda: store.release(WINDOWS[1:2], [-100], at, settles),
            rounds,
        )
    finally:
        await store.aclose()
        raw = aioredis.Redis.from_url(url)
        keys = [k async for k in raw.scan_iter(match=prefix + "*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=1000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.redis, args.n, args.rounds))
