"""A virtual model's targets -> the order of one call's attempts."""

from __future__ import annotations

import random
from collections import Counter

from llmrelay.routing.virtual import AttemptPolicy, attempt_order

from .helpers import virtual


def order(model, cooling=(), speeds=None, seed=0, factor=1.5):  # type: ignore[no-untyped-def]
    speeds = speeds or {}
    out = attempt_order(
        model,
        cooling=lambda name: name in cooling,
        seconds_per_token=lambda name: speeds.get(name),
        latency_factor=factor,
        rng=random.Random(seed),
    )
    return [t.name for t in out]


def firsts(model, n=1000, **kw):  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    return Counter(
        attempt_order(
            model,
            cooling=lambda _: False,
            seconds_per_token=lambda _: None,
            latency_factor=1.5,
            rng=rng,
            **kw,
        )[0].name
        for _ in range(n)
    )


def test_weights_spread_1000_selections_within_a_few_percent_of_the_ratio() -> None:
    model = virtual("weight", targets=[("a/m", 1, 1), ("b/m", 1, 3), ("c/m", 1, 6)])
    counts = firsts(model)
    assert sum(counts.values()) == 1000
    for name, share in (("a/m", 0.1), ("b/m", 0.3), ("c/m", 0.6)):
        assert abs(counts[name] / 1000 - share) < 0.03, counts


def test_priority_tries_groups_in_order_spreading_by_weight_within_one() -> None:
    model = virtual(
        "priority", targets=[("b/m", 2, 1), ("a/m", 1, 1), ("c/m", 2, 3), ("d/m", 3, 1)]
    )
    for seed in range(20):
        got = order(model, seed=seed)
        assert got[0] == "a/m" and got[3] == "d/m"
        assert set(got[1:3]) == {"b/m", "c/m"}
    counts = Counter(order(model, seed=s)[1] for s in range(1000))
    assert abs(counts["c/m"] / 1000 - 0.75) < 0.04, counts


def test_weight_strategy_ignores_priority() -> None:
    model = virtual("weight", targets=[("a/m", 1, 1), ("b/m", 2, 1)])
    assert firsts(model)["b/m"] > 400


def test_cooling_targets_go_last_in_their_order() -> None:
    model = virtual("priority", targets=[("a/m", 1, 1), ("b/m", 2, 1), ("c/m", 3, 1)])
    assert order(model, cooling={"a/m"}) == ["b/m", "c/m", "a/m"]
    assert order(model, cooling={"a/m", "b/m"}) == ["c/m", "a/m", "b/m"]
    assert order(model, cooling={"a/m", "b/m", "c/m"}) == ["a/m", "b/m", "c/m"]


def test_latency_prefers_targets_within_the_factor_of_the_fastest() -> None:
    model = virtual("latency", targets=[("a/m", 1, 1), ("b/m", 1, 1), ("c/m", 1, 1)])
    speeds = {"a/m": 0.050, "b/m": 0.010, "c/m": 0.014}
    for seed in range(50):
        got = order(model, speeds=speeds, seed=seed)
        assert set(got[:2]) == {"b/m", "c/m"} and got[2] == "a/m"
    # Slower targets come after the preferred ones, fastest first.
    speeds = {"a/m": 0.050, "b/m": 0.010, "c/m": 0.030}
    assert order(model, speeds=speeds) == ["b/m", "c/m", "a/m"]


def test_latency_treats_unmeasured_targets_as_fast() -> None:
    model = virtual("latency", targets=[("a/m", 1, 1), ("b/m", 1, 1)])
    got = Counter(order(model, speeds={"a/m": 5.0}, seed=s)[0] for s in range(200))
    assert got["a/m"] > 50 and got["b/m"] > 50  # a is the fastest measured; b is unknown
    got = Counter(order(model, speeds={"a/m": 5.0, "b/m": 0.1}, seed=s)[0] for s in range(50))
    assert got == {"b/m": 50}


def test_policy_from_config_expands_fallback_conditions() -> None:
    model = virtual(
        targets=[("a/m", 1, 1)],
        fallback_on=[429, "5xx", "overloaded", "timeout"],
        retry={"attempts": 3, "on_status": [429], "backoff_ms": 50},
    )
    p = model.policy
    assert p == AttemptPolicy(
        attempts_per_target=3,
        retry_on=frozenset({429}),
        backoff_s=0.05,
        fallback_statuses=frozenset({429, *range(500, 600)}),
        fallback_on_timeout=True,
        fallback_on_connect_error=False,
    )
