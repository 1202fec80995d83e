"""The router: names -> routes or virtual models, rules first; plans with session affinity."""

from __future__ import annotations

import random

import pytest

from llmrelay.config.routing import RoutingConfig, VirtualModelConfig
from llmrelay.errors import InvalidRequestError
from llmrelay.routing.router import Router
from llmrelay.routing.table import Route, RouteTable
from llmrelay.routing.virtual import VirtualModel

from .helpers import Clock, StubProvider

SESSION = {"X-Claude-Code-Session-Id": "s-1"}


def router(clock: Clock, **routing: object) -> Router:
    providers = {name: StubProvider(name) for name in ("a", "b", "c")}
    table = RouteTable(providers, {name: {"m": "model-id"} for name in providers})  # type: ignore[arg-type]
    models = {
        "v": VirtualModelConfig.model_validate(
            {"strategy": "weight", "targets": [{"model": f"{n}/m"} for n in "abc"]}
        ),
        "solo": VirtualModelConfig.model_validate({"targets": [{"model": "a/m"}]}),
    }
    return Router(
        table,
        models,
        RoutingConfig.model_validate(routing),
        rng=random.Random(3),
        clock=clock,
    )


def test_account_model_names_resolve_to_their_route_and_virtual_names_to_the_model() -> None:
    r = router(Clock())
    route = r.resolve("b/m", key="alice", team=None, headers={})
    assert isinstance(route, Route) and route.provider_model == "model-id"
    assert isinstance(r.resolve("v", key="alice", team=None, headers={}), VirtualModel)
    assert r.resolve("nope", key="alice", team=None, headers={}) is None
    assert [n for n, _ in r.names()] == ["a/m", "b/m", "c/m", "v", "solo"]
    assert "v" in r and "c/m" in r and "x" not in r


def test_rules_apply_before_the_name_is_looked_up() -> None:
    r = router(
        Clock(),
        rules=[
            {"match": {"key": "bob"}, "model": "c/m"},
            {"match": {"metadata": {"tier": "batch"}}, "model": "solo"},
        ],
    )
    got = r.resolve("v", key="bob", team=None, headers={})
    assert isinstance(got, Route) and got.public_model == "c/m"
    batch = {"x-llmrelay-metadata": '{"tier": "batch"}'}
    got = r.resolve("a/m", key="alice", team=None, headers=batch)
    assert isinstance(got, VirtualModel) and got.name == "solo"
    with pytest.raises(InvalidRequestError):
        r.resolve("v", key="alice", team=None, headers={"x-llmrelay-metadata": "[]"})


def test_a_session_is_pinned_to_the_target_that_served_it() -> None:
    clock = Clock()
    r = router(clock)
    model = r.virtual["v"]
    plan = r.plan(model, SESSION)
    assert plan.session == ("v", "s-1")
    served = plan.targets[2]  # say the first two failed
    r.served(model, plan, served)
    for _ in range(20):
        assert r.plan(model, SESSION).targets[0] is served
    assert {r.plan(model, {}).targets[0].public_model for _ in range(30)} == {"a/m", "b/m", "c/m"}
    clock.now += 3601  # affinity.ttl_s
    assert {r.plan(model, SESSION).targets[0].public_model for _ in range(30)} != {
        served.public_model
    }


def test_a_session_moves_when_its_target_cools_down() -> None:
    clock = Clock()
    r = router(clock, cooldown={"failures": 1, "seconds": 30})
    model = r.virtual["v"]
    plan = r.plan(model, SESSION)
    pinned = plan.targets[0]
    r.served(model, plan, pinned)
    r.health.failure(pinned.public_model)  # cooled down by other calls
    plan = r.plan(model, SESSION)
    assert plan.targets[0] is not pinned and plan.targets[-1] is pinned
    r.served(model, plan, plan.targets[0])
    clock.now += 31  # the old target recovers; the session stays where it moved
    assert r.plan(model, SESSION).targets[0] is plan.targets[0]


def test_the_session_header_is_configurable() -> None:
    r = router(Clock(), session_header="x-session")
    model = r.virtual["v"]
    assert r.plan(model, SESSION).session is None
    assert r.plan(model, {"x-session": "abc"}).session == ("v", "abc")
