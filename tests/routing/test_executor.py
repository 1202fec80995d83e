"""The attempt loop: retries, backoff, retry-after, fallbacks, timeouts, the deadline and the
final error. Waits go to a clock moved by hand; time limits are real but tiny."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from llmrelay.errors import InvalidRequestError, UpstreamTimeout, UpstreamUnreachable
from llmrelay.routing.executor import Failure, Outcome, Success, execute, retry_after_s
from llmrelay.routing.health import Health
from llmrelay.routing.table import Route

from .helpers import Clock, route, virtual

A, B, C = route("a/m"), route("b/m"), route("c/m")

Script = dict[str, list[Any]]


def scripted(script: Script) -> tuple[Callable[[Route], Awaitable[Any]], list[str]]:
    """An attempt function answering each target from its list (a Failure, an exception, a
    value for success, or "hang"); the last entry repeats."""
    calls: list[str] = []

    async def attempt(r: Route) -> Success[str] | Failure:
        calls.append(r.public_model)
        items = script[r.public_model]
        item = items.pop(0) if len(items) > 1 else items[0]
        if item == "hang":
            await asyncio.Event().wait()
        if isinstance(item, Exception):
            raise item
        if isinstance(item, Failure):
            return item
        return Success(item)

    return attempt, calls


def run(
    script: Script,
    targets: tuple[Route, ...] = (A, B),
    *,
    stream: bool = False,
    clock: Clock | None = None,
    health: Health | None = None,
    **config: Any,
) -> tuple[Outcome[str], list[str], Clock]:
    model = virtual(targets=[(t.public_model, 1, 1) for t in targets], **config)
    attempt, calls = scripted(script)
    fake = clock or Clock()
    health = health or Health(failures=99, cooldown_s=1, max_retry_after_s=0)
    # Tests of time limits run on the real clock (asyncio.timeout uses the loop's); the
    # others wait on the hand-moved one.
    real_time = clock is None and "deadline_s" in config
    kw: dict[str, Any] = {} if real_time else {"clock": fake, "sleep": fake.sleep}
    outcome = asyncio.run(
        execute(
            list(targets),
            attempt,
            model.policy,
            stream=stream,
            health=health,
            rng=random.Random(1),
            **kw,
        )
    )
    return outcome, calls, fake


def overloaded() -> Failure:
    return Failure(529, "overloaded_error", "Overloaded")


def throttled(after: float | None) -> Failure:
    return Failure(429, "rate_limit_error", "slow down", retry_after_s=after)


def test_a_529_falls_back_to_the_next_target() -> None:
    outcome, calls, clock = run({"a/m": [overloaded()], "b/m": ["from b"]})
    assert outcome.value == "from b" and outcome.route is B and outcome.failure is None
    assert calls == ["a/m", "b/m"]
    assert [(r.target, r.status, r.error_type) for r in outcome.attempts] == [
        ("a/m", 529, "overloaded_error"),
        ("b/m", 200, None),
    ]
    assert clock.slept == []  # moving to another target does not wait


def test_retries_on_the_same_target_with_exponential_jittered_backoff() -> None:
    failing = Failure(503, "api_error", "unavailable")
    outcome, calls, clock = run(
        {"a/m": [failing], "b/m": ["ok"]},
        retry={"attempts": 3, "on_status": [503], "backoff_ms": 100},
    )
    assert calls == ["a/m", "a/m", "a/m", "b/m"]
    assert len(clock.slept) == 2
    assert 0.05 <= clock.slept[0] <= 0.1 and 0.1 <= clock.slept[1] <= 0.2
    assert outcome.value == "ok"


def test_retry_after_is_waited_for_up_to_its_cap() -> None:
    outcome, calls, clock = run(
        {"a/m": [throttled(2.5), "ok"], "b/m": ["from b"]},
        retry={"attempts": 2, "max_retry_after_s": 3},
    )
    assert calls == ["a/m", "a/m"] and clock.slept == [2.5] and outcome.value == "ok"
    # Longer than the cap: not waited for; the next target is tried at once.
    outcome, calls, clock = run(
        {"a/m": [throttled(60), "ok"], "b/m": ["from b"]},
        retry={"attempts": 2, "max_retry_after_s": 3},
    )
    assert calls == ["a/m", "b/m"] and clock.slept == [] and outcome.value == "from b"
    # use_retry_after off: the backoff decides.
    outcome, calls, clock = run(
        {"a/m": [throttled(2.5), "ok"], "b/m": ["from b"]},
        retry={"attempts": 2, "use_retry_after": False, "backoff_ms": 10},
    )
    assert calls == ["a/m", "a/m"] and clock.slept[0] <= 0.01


def test_a_failure_not_named_in_fallback_on_is_final_at_once() -> None:
    bad = Failure(400, "invalid_request_error", "bad", body=b"{}")
    outcome, calls, _ = run({"a/m": [bad], "b/m": ["ok"]})
    assert calls == ["a/m"] and outcome.failure is bad and outcome.route is A
    outcome, calls, _ = run(
        {"a/m": [UpstreamUnreachable("refused")], "b/m": ["ok"]}, fallback_on=[529]
    )
    assert calls == ["a/m"] and outcome.failure is not None
    assert outcome.failure.kind == "connect_error" and outcome.failure.status == 502


def test_all_throttled_gives_the_429_with_the_shortest_retry_after() -> None:
    outcome, _, _ = run(
        {"a/m": [throttled(7)], "b/m": [throttled(3)], "c/m": [throttled(None)]}, (A, B, C)
    )
    assert outcome.failure is not None and outcome.failure.retry_after_s == 3
    assert outcome.route is B and len(outcome.attempts) == 3


def test_otherwise_the_last_failure_is_final() -> None:
    outcome, _, _ = run({"a/m": [throttled(7)], "b/m": [overloaded()]})
    assert outcome.failure is not None and outcome.failure.status == 529
    assert outcome.route is B


def test_targets_that_cannot_take_the_request_are_skipped_and_not_final() -> None:
    unsupported = InvalidRequestError("tools: server tools are not supported")
    outcome, calls, _ = run({"a/m": [overloaded()], "b/m": [unsupported]})
    assert calls == ["a/m", "b/m"]
    assert outcome.failure is not None and outcome.failure.status == 529
    outcome, _, _ = run({"a/m": [unsupported], "b/m": [unsupported]})
    assert outcome.failure is not None and outcome.failure.status == 400
    outcome, _, _ = run({"a/m": [unsupported], "b/m": ["ok"]})
    assert outcome.value == "ok"


def test_timeouts_and_connection_errors_fall_back() -> None:
    outcome, _, _ = run(
        {"a/m": [UpstreamTimeout("slow")], "b/m": [UpstreamUnreachable("x")], "c/m": ["ok"]},
        (A, B, C),
    )
    assert outcome.value == "ok"
    assert [r.error_type for r in outcome.attempts] == ["timeout_error", "api_error", None]


def test_a_hung_attempt_is_cut_by_timeout_s() -> None:
    outcome, calls, _ = run({"a/m": ["hang"], "b/m": ["ok"]}, timeout_s=0.05, deadline_s=30)
    assert calls == ["a/m", "b/m"] and outcome.value == "ok"
    assert outcome.attempts[0].status == 504
    assert "(timeout_s)" in (outcome.attempts[0].message or "")


def test_first_token_timeout_applies_to_streams_only() -> None:
    outcome, _, _ = run(
        {"a/m": ["hang"], "b/m": ["ok"]},
        stream=True,
        timeout_s=30,
        first_token_timeout_s=0.05,
        deadline_s=30,
    )
    assert outcome.value == "ok"
    assert "first content" in (outcome.attempts[0].message or "")
    assert "(first_token_timeout_s)" in (outcome.attempts[0].message or "")


def test_the_overall_deadline_holds() -> None:
    outcome, calls, _ = run({"a/m": ["hang"], "b/m": ["hang"]}, timeout_s=30, deadline_s=0.1)
    assert calls == ["a/m"]  # no time was left for b
    assert outcome.failure is not None and outcome.failure.status == 504
    assert "(deadline_s)" in outcome.failure.message


def test_a_backoff_that_would_cross_the_deadline_is_not_started() -> None:
    clock = Clock()
    outcome, calls, _ = run(
        {"a/m": [throttled(5), "ok"], "b/m": ["from b"]},
        clock=clock,
        deadline_s=4,
        retry={"attempts": 2, "max_retry_after_s": 10},
    )
    assert calls == ["a/m", "b/m"] and clock.slept == [] and outcome.value == "from b"


def test_failures_feed_cooldowns_and_successes_clear_them() -> None:
    clock = Clock()
    health = Health(failures=2, cooldown_s=30, max_retry_after_s=60, clock=clock)
    run({"a/m": [overloaded()], "b/m": ["ok"]}, clock=clock, health=health)
    assert not health.cooling("a/m")
    run({"a/m": [overloaded()], "b/m": ["ok"]}, clock=clock, health=health)
    assert health.cooling("a/m") and not health.cooling("b/m")
    # A 429 with retry-after cools at once; a 400 does not count.
    run({"b/m": [throttled(5)], "a/m": ["ok"]}, (B, A), clock=clock, health=health)
    assert health.cooling_for("b/m") == 5
    bad = Failure(400, "invalid_request_error", "bad")
    run({"c/m": [bad]}, (C,), clock=clock, health=health)
    run({"c/m": [bad]}, (C,), clock=clock, health=health)
    assert not health.cooling("c/m")


def test_retry_after_headers() -> None:
    assert retry_after_s({"Retry-After": "3"}) == 3
    assert retry_after_s({"retry-after": "3", "retry-after-ms": "250"}) == 0.25
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
