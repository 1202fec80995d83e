"""The requested model name -> what serves the call, and what the gateway learns per target.

``account/model`` names resolve to their :class:`~llmrelay.routing.table.Route`, as they
always did: one target, no retries, no gate. Virtual model names resolve to a
:class:`~llmrelay.routing.virtual.VirtualModel`, whose :meth:`Router.plan` gives the order of
targets for one call (strategy, cooldowns, session affinity). Routing rules, when any are
configured, are applied first.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ..config.routing import RoutingConfig, VirtualModelConfig
from .affinity import SessionAffinity, SessionKey
from .health import Health, LatencyStats
from .rules import METADATA_HEADER, Rules, parse_metadata
from .table import Route, RouteTable
from .virtual import AttemptPolicy, Target, VirtualModel, attempt_order

__all__ = ["Plan", "Router"]


@dataclass(slots=True)
class Plan:
    """One call's targets in the order to try them; ``session`` is its affinity key."""

    targets: list[Route]
    session: SessionKey | None


class Router:
    def __init__(
        self,
        table: RouteTable,
        models: Mapping[str, VirtualModelConfig],
        routing: RoutingConfig,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.virtual: dict[str, VirtualModel] = {}
        for name, c in models.items():
            targets = []
            for t in c.targets:
                route = table.get(t.model)
                assert route is not None, t.model  # config validation checked every target
                targets.append(Target(route, t.priority, t.weight))
            self.virtual[name] = VirtualModel(
                name,
                c.strategy,
                tuple(targets),
                AttemptPolicy.from_config(c),
                c.affinity.enabled,
                c.affinity.ttl_s,
            )
        self.rules = Rules(routing.rules)
        self.session_header = routing.session_header
        cd = routing.cooldown
        self.health = Health(
            failures=cd.failures,
            cooldown_s=cd.seconds,
            max_retry_after_s=cd.max_retry_after_s,
            clock=clock,
        )
        lat = routing.latency
        self.latency = LatencyStats(
            window_calls=lat.window_calls, window_s=lat.window_s, clock=clock
        )
        self._latency_factor = lat.factor
        self.affinity = SessionAffinity(routing.max_sessions, clock)
        self.rng = rng or random.Random()

    def resolve(
        self, model: str, *, key: str, team: str | None, headers: Mapping[str, str]
    ) -> Route | VirtualModel | None:
        """What serves a call asking for ``model``: rules first, then the name itself.

        Raises:
            InvalidRequestError: a rule needs ``x-llmrelay-metadata`` and it is not a JSON
                object (400).
        """
        if self.rules:
            metadata = None
            if self.rules.uses_metadata:
                metadata = parse_metadata(headers.get(METADATA_HEADER))
            routed = self.rules.route(key=key, team=team, model=model, metadata=metadata)
            if routed is not None:
                model = routed
        route = self.table.get(model)
        if route is not None:
            return route
        return self.virtual.get(model)

    def plan(self, model: VirtualModel, headers: Mapping[str, str]) -> Plan:
        """The targets of one call, in order; a session's pinned target first while healthy."""
        order = attempt_order(
            model,
            cooling=self.health.cooling,
            seconds_per_token=self.latency.seconds_per_token,
            latency_factor=self._latency_factor,
            rng=self.rng,
        )
        routes = [t.route for t in order]
        session = None
        if model.affinity:
            sid = headers.get(self.session_header)
            if sid:
                session = (model.name, sid)
                pinned = self.affinity.get(session)
                if pinned is not None:
                    if self.health.cooling(pinned):
                        self.affinity.drop(session)
                    else:
                        routes.sort(key=lambda r: r.public_model != pinned)
        return Plan(routes, session)

    def served(self, model: VirtualModel, plan: Plan, route: Route) -> None:
        """``route`` answered a call of ``plan``: pin its session there."""
        if plan.session is not None:
            self.affinity.pin(plan.session, route.public_model, model.affinity_ttl_s)

    def names(self) -> Iterator[tuple[str, str]]:
        """(model name, owner) for every name clients may send: account/model names (owned
        by their account), then virtual models (owned by ``llmrelay``)."""
        for route in self.table:
            yield route.public_model, route.account
        for name in self.virtual:
            yield name, "llmrelay"

    def __contains__(self, model: str) -> bool:
        return self.table.get(model) is not None or model in self.virtual
