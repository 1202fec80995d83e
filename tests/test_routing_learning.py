"""What the gateway learns from calls, end to end: cooldowns (a target is skipped, then used
again), session affinity (a session sticks to a target, and moves when it fails) and
latency routing (traffic moves away from a target made slow)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic, fixture_reply
from tests.gateway_env import raw_request

HELLO = [{"role": "user", "content": "Hello"}]
SESSION = "x-claude-code-session-id"


@dataclass
class Learning:
    a: FakeAnthropic
    b: FakeAnthropic
    gw: GatewayProcess

    def call(self, model: str, **headers: str) -> dict[str, str]:
        status, out, body = raw_request(
            self.gw.url + "/v1/messages",
            json.dumps({"model": model, "max_tokens": 20, "messages": HELLO}).encode(),
            {"x-api-key": ALICE_KEY, "content-type": "application/json", **headers},
        )
        assert status == 200, body
        return out

    def fake_of(self, target: str) -> FakeAnthropic:
        return self.a if target.split("/")[0].endswith("1") else self.b


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Learning]:
    tmp = tmp_path_factory.mktemp("learning")
    a, b = FakeAnthropic(), FakeAnthropic()
    a.start()
    b.start()

    def account(fake: FakeAnthropic) -> dict[str, Any]:
        return {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": "sk-ant-upstream",
            "models": {"claude": "claude-sonnet-4-6"},
        }

    providers = {f"{kind}{n}": account(fake) for kind in "csl" for n, fake in ((1, a), (2, b))}
    models = {
        "cool": {
            "targets": [
                {"model": "c1/claude", "priority": 1},
                {"model": "c2/claude", "priority": 2},
            ]
        },
        "sticky": {
            "strategy": "weight",
            "targets": [{"model": "s1/claude"}, {"model": "s2/claude"}],
        },
        "fast": {
            "strategy": "latency",
            "targets": [{"model": "l1/claude"}, {"model": "l2/claude"}],
        },
    }
    routing = {"cooldown": {"failures": 2, "seconds": 1}}
    config = base_config(tmp, providers, models=models, routing=routing)
    try:
        gw = start_gateway(tmp, config, "--log-level", "info")
        try:
            yield Learning(a, b, gw)
        finally:
            gw.stop()
    finally:
        a.stop()
        b.stop()


def test_a_cooled_down_target_is_skipped_and_later_used_again(env: Learning) -> None:
    env.a.enqueue(fixture_reply("error_529.json"), fixture_reply("error_529.json"))
    for _ in range(2):  # two failures in a row start the cooldown
        headers = env.call("cool")
        assert headers["x-llmrelay-model"] == "c2/claude"
        assert headers["x-llmrelay-attempts"] == "2"
    assert '"msg":"target cooling down"' in env.gw.log()
    before = len(env.a.requests)
    headers = env.call("cool")
    assert headers["x-llmrelay-model"] == "c2/claude"
    assert headers["x-llmrelay-attempts"] == "1"
    assert len(env.a.requests) == before  # skipped, not tried
    time.sleep(1.1)  # the cooldown (1 s) ends by itself
    headers = env.call("cool")
    assert headers["x-llmrelay-model"] == "c1/claude"
    assert len(env.a.requests) == before + 1


def test_a_session_sticks_to_one_target_and_moves_when_it_fails(env: Learning) -> None:
    unpinned = {env.call("sticky")["x-llmrelay-model"] for _ in range(20)}
    assert unpinned == {"s1/claude", "s2/claude"}  # without a session: spread by weight
    served = {env.call("sticky", **{SESSION: "session-1"})["x-llmrelay-model"] for _ in range(12)}
    assert len(served) == 1
    pinned = served.pop()
    other = "s2/claude" if pinned == "s1/claude" else "s1/claude"
    env.fake_of(pinned).enqueue(fixture_reply("error_529.json"))
    headers = env.call("sticky", **{SESSION: "session-1"})
    assert headers["x-llmrelay-model"] == other and headers["x-llmrelay-attempts"] == "2"
    moved = {env.call("sticky", **{SESSION: "session-1"})["x-llmrelay-model"] for _ in range(6)}
    assert moved == {other}


def test_latency_routing_moves_traffic_away_from_a_target_made_slow(env: Learning) -> None:
    env.a.latency_s = 0.5  # l1 answers half a second late
    try:
        served: list[str] = []
        # Unmeasured targets share the traffic until each has been measured once ...
        while len(set(served)) < 2 and len(served) < 30:
            served.append(env.call("fast")["x-llmrelay-model"])
        assert set(served) == {"l1/claude", "l2/claude"}
        # ... then the slow one gets none.
        later = [env.call("fast")["x-llmrelay-model"] for _ in range(8)]
        assert later == ["l2/claude"] * 8
    finally:
        env.a.latency_s = 0.0
