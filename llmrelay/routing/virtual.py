"""A virtual model's targets -> the order one call tries them in.

The strategies (``docs/routing.md`` has the same rules in prose):

* ``priority``: by ascending ``priority``; targets of equal priority in a weighted random
  order (a target's chance to come first within its group is its share of the weights).
* ``weight``: one weighted random order over all targets (priorities ignored).
* ``latency``: targets whose recent seconds per output token is within ``factor`` of the
  fastest measured one, and targets not measured recently, come first in a weighted random
  order; the slower ones follow, fastest first.

Whatever the strategy, targets cooling down go last, in the same relative order: they are
tried only when every other target failed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..config.routing import Strategy, VirtualModelConfig
from .table import Route

__all__ = ["AttemptPolicy", "Target", "VirtualModel", "attempt_order", "weighted_order"]


@dataclass(slots=True, frozen=True)
class Target:
    route: Route
    priority: int
    weight: float

    @property
    def name(self) -> str:
        return self.route.public_model


@dataclass(slots=True, frozen=True)
class AttemptPolicy:
    """How the executor treats one call's attempts (see ``VirtualModelConfig``)."""

    attempts_per_target: int = 1
    retry_on: frozenset[int] = frozenset()
    backoff_s: float = 0.2
    use_retry_after: bool = True
    max_retry_after_s: float = 30.0
    timeout_s: float = 600.0
    first_token_timeout_s: float | None = None
    deadline_s: float = 600.0
    fallback_statuses: frozenset[int] = frozenset()
    fallback_on_timeout: bool = True
    fallback_on_connect_error: bool = True

    @classmethod
    def from_config(cls, c: VirtualModelConfig) -> AttemptPolicy:
        statuses: set[int] = set()
        for item in c.fallback_on:
            if isinstance(item, int):
                statuses.add(item)
            elif item == "4xx":
                statuses.update(range(400, 500))
            elif item == "5xx":
                statuses.update(range(500, 600))
            elif item == "overloaded":
                statuses.add(529)
        return cls(
            attempts_per_target=c.retry.attempts,
            retry_on=frozenset(c.retry.on_status),
            backoff_s=c.retry.backoff_ms / 1000,
            use_retry_after=c.retry.use_retry_after,
            max_retry_after_s=c.retry.max_retry_after_s,
            timeout_s=c.timeout_s,
            first_token_timeout_s=c.first_token_timeout_s,
            deadline_s=c.deadline_s,
            fallback_statuses=frozenset(statuses),
            fallback_on_timeout="timeout" in c.fallback_on,
            fallback_on_connect_error="connect_error" in c.fallback_on,
        )


@dataclass(slots=True, frozen=True)
class VirtualModel:
    name: str
    strategy: Strategy
    targets: tuple[Target, ...]
    policy: AttemptPolicy
    affinity: bool
    affinity_ttl_s: float


def weighted_order(targets: Sequence[Target], rng: random.Random) -> list[Target]:
    """A random order where each target's chance to come first is ``weight / sum(weights)``
    (Efraimidis-Spirakis: sort by ``u ** (1 / weight)``, largest first)."""
    if len(targets) < 2:
        return list(targets)
    keyed = [(rng.random() ** (1.0 / t.weight), i) for i, t in enumerate(targets)]
    keyed.sort(reverse=True)
    return [targets[i] for _, i in keyed]


def attempt_order(
    model: VirtualModel,
    *,
    cooling: Callable[[str], bool],
    seconds_per_token: Callable[[str], float | None],
    latency_factor: float,
    rng: random.Random,
) -> list[Target]:
    """The order one call tries ``model``'s targets in (the module docstring has the rules)."""
    targets = model.targets
    if model.strategy == "priority":
        ranked: list[Target] = []
        for priority in sorted({t.priority for t in targets}):
            ranked += weighted_order([t for t in targets if t.priority == priority], rng)
    elif model.strategy == "weight":
        ranked = weighted_order(targets, rng)
    else:
        speed = {t.name: seconds_per_token(t.name) for t in targets}
        known = [s for s in speed.values() if s is not None]
        limit = min(known) * latency_factor if known else 0.0
        fast = [t for t in targets if (s := speed[t.name]) is None or s <= limit]
        slow = [t for t in targets if (s := speed[t.name]) is not None and s > limit]
        slow.sort(key=lambda t: speed[t.name] or 0.0)
        ranked = weighted_order(fast, rng) + slow
    healthy = [t for t in ranked if not cooling(t.name)]
    if len(healthy) == len(ranked):
        return ranked
    return healthy + [t for t in ranked if cooling(t.name)]
