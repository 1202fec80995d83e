"""SharedHealth against a real Redis, without gateways: the fleet's latency figures, the
cooldown catch-up on subscribe, and the hooks it uses in Health and LatencyStats."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay.routing.health import Health, LatencyStats
from llmrelay.routing.shared_health import SharedHealth
from tests.governance.cluster import REDIS_URL, redis_prefix


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_health_reports_the_cooldowns_it_starts_and_takes_others() -> None:
    clock = Clock()
    health = Health(failures=2, cooldown_s=30, max_retry_after_s=60, clock=clock)
    started: list[tuple[str, float]] = []
    health.on_cooldown = lambda target, s: started.append((target, s))
    health.failure("a/m")
    assert started == []  # one failure of two: no cooldown yet
    health.failure("a/m")
    assert started == [("a/m", 30)]
    health.cool("b/m", 12)  # learnt from another instance: not reported again
    assert started == [("a/m", 30)]
    assert health.cooling("b/m") and health.cooling_for("b/m") == 12


def test_latency_prefers_the_fleet_figure_and_falls_back_to_its_own() -> None:
    clock = Clock()
    stats = LatencyStats(window_calls=10, window_s=60, clock=clock)
    stats.observe("a/m", 2.0, 100)
    assert stats.sums() == {"a/m": (2.0, 100)}
    stats.set_fleet({"a/m": 0.5})
    assert stats.seconds_per_token("a/m") == 0.5
    stats.set_fleet({})
    assert stats.seconds_per_token("a/m") == 0.02


@pytest.mark.skipif(not REDIS_URL, reason="set LLMRELAY_TEST_REDIS_URL")
def test_the_fleet_figure_is_seconds_over_tokens_across_instances() -> None:
    async def body(prefix: str) -> None:
        one, two = (
            LatencyStats(window_calls=10, window_s=60),
            LatencyStats(window_calls=10, window_s=60),
        )
        one.observe("a/m", 3.0, 100)
        two.observe("a/m", 1.0, 300)
        two.observe("b/m", 1.0, 10)
        shared = [
            SharedHealth(
                Health(failures=1, cooldown_s=1, max_retry_after_s=1),
                stats,
                REDIS_URL or "",
                prefix,
                window_s=60,
            )
            for stats in (one, two)
        ]
        for s in shared:
            await s.sync_latency()
        await shared[0].sync_latency()  # now sees the second's sums too
        assert one.seconds_per_token("a/m") == pytest.approx(4.0 / 400)
        assert one.seconds_per_token("b/m") == pytest.approx(0.1)  # never called here
        for s in shared:
            await s.aclose()

    with redis_prefix() as prefix:
        asyncio.run(body(prefix))


@pytest.mark.skipif(not REDIS_URL, reason="set LLMRELAY_TEST_REDIS_URL")
def test_a_new_instance_learns_the_cooldowns_already_running() -> None:
    async def body(prefix: str) -> None:
        first = Health(failures=1, cooldown_s=30, max_retry_after_s=60)
        a = SharedHealth(
            first, LatencyStats(window_calls=5, window_s=60), REDIS_URL or "", prefix, window_s=60
        )
        a.start()
        first.failure("a/m")  # starts a 30 s cooldown, published in the background
        for _ in range(100):
            if a._queue.empty():
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        later = Health(failures=1, cooldown_s=30, max_retry_after_s=60)
        b = SharedHealth(
            later, LatencyStats(window_calls=5, window_s=60), REDIS_URL or "", prefix, window_s=60
        )
        b.start()
        for _ in range(100):
            if later.cooling("a/m"):
                break
            await asyncio.sleep(0.02)
        assert later.cooling("a/m") and 25 < later.cooling_for("a/m") <= 30
        await a.aclose()
        await b.aclose()

    with redis_prefix() as prefix:
        asyncio.run(body(prefix))
