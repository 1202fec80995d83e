"""Cooldowns, latency measurements and session affinity, on a clock moved by hand."""

from __future__ import annotations

from llmrelay.routing.affinity import SessionAffinity
from llmrelay.routing.health import Health, LatencyStats

from .helpers import Clock


def test_consecutive_failures_cool_a_target_down_and_it_recovers_by_itself() -> None:
    clock = Clock()
    h = Health(failures=3, cooldown_s=30, max_retry_after_s=300, clock=clock)
    assert h.failure("a/m") == 0 and h.failure("a/m") == 0
    h.success("a/m")  # a success in between starts the count again
    assert h.failure("a/m") == 0 and h.failure("a/m") == 0
    assert not h.cooling("a/m")
    assert h.failure("a/m") == 30
    assert h.cooling("a/m") and not h.cooling("b/m")
    clock.now += 29.9
    assert h.cooling("a/m")
    clock.now += 0.2
    assert not h.cooling("a/m")


def test_after_a_cooldown_one_failure_cools_again_until_a_success() -> None:
    clock = Clock()
    h = Health(failures=3, cooldown_s=10, max_retry_after_s=300, clock=clock)
    for _ in range(3):
        h.failure("a/m")
    clock.now += 11
    assert not h.cooling("a/m")
    assert h.failure("a/m") == 10  # on probation
    clock.now += 11
    h.success("a/m")
    assert h.failure("a/m") == 0


def test_retry_after_cools_at_once_bounded_by_its_cap() -> None:
    clock = Clock()
    h = Health(failures=3, cooldown_s=10, max_retry_after_s=60, clock=clock)
    assert h.failure("a/m", retry_after_s=5) == 5
    assert h.cooling_for("a/m") == 5
    assert h.failure("b/m", retry_after_s=3600) == 60
    off = Health(failures=3, cooldown_s=10, max_retry_after_s=0, clock=clock)
    assert off.failure("a/m", retry_after_s=5) == 0


def test_latency_is_seconds_per_output_token_over_recent_calls() -> None:
    clock = Clock()
    stats = LatencyStats(window_calls=3, window_s=60, clock=clock)
    assert stats.seconds_per_token("a/m") is None
    stats.observe("a/m", 1.0, 100)
    stats.observe("a/m", 3.0, 100)
    assert stats.seconds_per_token("a/m") == 0.02
    # A short answer (mostly time to first token) weighs by its tokens, not as one call.
    stats.observe("a/m", 0.6, 2)
    assert stats.seconds_per_token("a/m") == 4.6 / 202
    stats.observe("a/m", 0.5, 0)  # no output tokens: counted as one
    assert stats.seconds_per_token("a/m") == (3.0 + 0.6 + 0.5) / 103  # only the last 3 calls
    clock.now += 60.5
    stats.observe("b/m", 1.0, 10)
    assert stats.seconds_per_token("b/m") == 0.1
    clock.now += 1
    assert stats.seconds_per_token("a/m") is None  # too old: measure again


def test_affinity_pins_expires_and_forgets_the_least_recently_used() -> None:
    clock = Clock()
    pins = SessionAffinity(max_sessions=2, clock=clock)
    pins.pin(("v", "s1"), "a/m", ttl_s=10)
    pins.pin(("v", "s2"), "b/m", ttl_s=10)
    assert pins.get(("v", "s1")) == "a/m"
    pins.pin(("v", "s1"), "a/m", ttl_s=10)  # s1 used again: s2 is now the oldest
    pins.pin(("v", "s3"), "c/m", ttl_s=10)
    assert len(pins) == 2 and pins.get(("v", "s2")) is None
    assert pins.get(("w", "s1")) is None  # per virtual model
    clock.now += 10
    assert pins.get(("v", "s1")) is None
    pins.pin(("v", "s1"), "a/m", ttl_s=10)
    pins.drop(("v", "s1"))
    assert pins.get(("v", "s1")) is None
