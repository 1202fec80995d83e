"""Microbenchmark: what sharing routing health through Redis costs (routing/shared_health.py).

Nothing is added to a call's round trips; what a call does pay is measured here, with what
the background pays:

* ``plan lookup``: ``LatencyStats.seconds_per_token`` with and without fleet figures (the
  one extra dictionary lookup per target on the call's path);
* ``cooldown hook``: ``Health.failure`` starting a cooldown with the publish hook set (a
  queue put) against without;
* ``latency sync``: one background sync (write this process's sums, read the fleet's) with
  ``--targets`` targets and ``--instances`` instances' entries in the hash, wall and CPU.

    .venv/bin/python bench/shared_health.py --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable

from llmrelay.routing.health import Health, LatencyStats
from llmrelay.routing.shared_health import SharedHealth


def _per_call(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e9


async def main(url: str, targets: int, instances: int, n: int) -> None:
    stats = LatencyStats(window_calls=100, window_s=300)
    for i in range(targets):
        stats.observe(f"acct{i}/model", 1.0, 100)

    def lookup() -> object:
        return stats.seconds_per_token("acct0/model")

    print(f"plan lookup, own figures      {_per_call(lookup, n):7.0f} ns")
    stats.set_fleet({f"acct{i}/model": 0.01 for i in range(targets)})
    print(f"plan lookup, fleet figures    {_per_call(lookup, n):7.0f} ns")

    plain = Health(failures=1, cooldown_s=30, max_retry_after_s=60)
    print(f"cooldown start, no hook       {_per_call(lambda: plain.failure('a/m'), n):7.0f} ns")
    prefix = f"llmrelay-bench:{uuid.uuid4().hex}:"
    hooked = Health(failures=1, cooldown_s=30, max_retry_after_s=60)
    shared = SharedHealth(hooked, stats, url, prefix, window_s=300)
    hooked.on_cooldown = shared._cooled  # the hook only: no background task drains here

    def failure() -> None:
        hooked.failure("a/m")
        if shared._queue.full():
            shared._queue = asyncio.Queue(1000)

    print(f"cooldown start, publish hook  {_per_call(failure, n):7.0f} ns")

    others = [
        SharedHealth(
            Health(failures=1, cooldown_s=1, max_retry_after_s=1), stats, url, prefix, window_s=300
        )
        for _ in range(instances - 1)
    ]
    for other in others:
        await other.sync_latency()
    rounds = 200
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        await shared.sync_latency()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"latency sync ({targets} targets x {instances} instances)"
        f" {wall / rounds * 1e6:6.0f} us wall {cpu / rounds * 1e6:6.0f} us CPU, once a second"
    )
    for s in (shared, *others):
        await s.aclose()
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.redis, args.targets, args.instances, args.n))
