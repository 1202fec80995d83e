"""Small stand-ins for the routing unit tests: routes without providers, a manual clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmrelay.config.routing import VirtualModelConfig
from llmrelay.routing.table import Route
from llmrelay.routing.virtual import AttemptPolicy, Target, VirtualModel


@dataclass
class StubProvider:
    account: str
    wire: str = "anthropic"


def route(name: str) -> Route:
    account = name.split("/", 1)[0]
    return Route(name, StubProvider(account), name.split("/", 1)[1])  # type: ignore[arg-type]


class Clock:
    """A monotonic clock the test moves by hand; ``sleep`` advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def virtual(strategy: str = "priority", **config: Any) -> VirtualModel:
    """A virtual model from a config mapping (targets as ``(name, priority, weight)``)."""
    targets = config.pop("targets")
    c = VirtualModelConfig.model_validate(
        {
            "strategy": strategy,
            "targets": [{"model": n, "priority": p, "weight": w} for n, p, w in targets],
            **config,
        }
    )
    return VirtualModel(
        "v",
        c.strategy,
        tuple(Target(route(t.model), t.priority, t.weight) for t in c.targets),
        AttemptPolicy.from_config(c),
        c.affinity.enabled,
        c.affinity.ttl_s,
    )
