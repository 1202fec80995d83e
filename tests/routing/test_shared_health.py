"""Routing health shared through Redis: two real gateways on one Redis prefix.

One instance's 529 cools the target for the other, which then routes around it without
calling it; with Redis gone each instance keeps its own view and no call fails.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic, fixture_reply
from tests.governance.cluster import REDIS_URL, redis_prefix
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="set LLMRELAY_TEST_REDIS_URL")

HELLO = [{"role": "user", "content": "Hello"}]


def _config(
    tmp: Path, primary: FakeAnthropic, secondary: FakeAnthropic, redis: dict[str, Any]
) -> dict[str, Any]:
    def account(fake: FakeAnthropic) -> dict[str, Any]:
        return {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": "sk-ant-upstream",
            "models": {"claude": "claude-sonnet-4-6"},
        }

    return base_config(
        tmp,
        {"primary": account(primary), "secondary": account(secondary)},
        models={
            "claude": {
                "targets": [
                    {"model": "primary/claude", "priority": 1},
                    {"model": "secondary/claude", "priority": 2},
                ]
            }
        },
        routing={"cooldown": {"failures": 1, "seconds": 60}},
        redis=redis,
    )


def _posts(fake: FakeAnthropic) -> int:
    return len([r for r in fake.requests if r.method == "POST"])


def _cooldown(gw: GatewayProcess, target: str) -> float:
    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.search(
        rf'^llmrelay_target_cooldown\{{target="{re.escape(target)}"\}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def fakes() -> Iterator[tuple[FakeAnthropic, FakeAnthropic]]:
    a, b = FakeAnthropic(), FakeAnthropic()
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_a_529_seen_by_one_instance_cools_the_target_for_the_other(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeAnthropic]
) -> None:
    primary, secondary = fakes
    with redis_prefix() as prefix:
        cfg = _config(tmp_path, primary, secondary, {"url": REDIS_URL, "prefix": prefix})
        one = start_gateway(tmp_path, cfg)
        two = start_gateway(tmp_path, cfg)
        try:
            time.sleep(1.0)  # both subscribed
            primary.enqueue(fixture_reply("error_529.json"))
            client_one = anthropic.Anthropic(api_key=ALICE_KEY, base_url=one.url, max_retries=0)
            answer = client_one.messages.create(model="claude", max_tokens=20, messages=HELLO)
            assert answer.content  # served by the secondary after the 529
            assert _posts(primary) == 1 and _posts(secondary) == 1
            deadline = time.monotonic() + 5
            while _cooldown(two, "primary/claude") <= 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _cooldown(two, "primary/claude") > 50
            client_two = anthropic.Anthropic(api_key=ALICE_KEY, base_url=two.url, max_retries=0)
            for _ in range(3):
                answer = client_two.messages.create(model="claude", max_tokens=20, messages=HELLO)
                assert answer.content
            assert _posts(primary) == 1, "the second instance never called the cooled target"
            assert _posts(secondary) == 4
            client_one.close()
            client_two.close()
        finally:
            one.stop()
            two.stop()


def test_redis_away_each_instance_keeps_its_own_view_and_no_call_fails(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeAnthropic]
) -> None:
    primary, secondary = fakes
    parts = urllib.parse.urlsplit(REDIS_URL or "")
    with (
        redis_prefix() as prefix,
        TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy,
    ):
        proxy.start()
        url = f"redis://127.0.0.1:{proxy.port}{parts.path}"
        gw = start_gateway(
            tmp_path, _config(tmp_path, primary, secondary, {"url": url, "prefix": prefix})
        )
        try:
            time.sleep(1.0)
            proxy.stop()  # Redis is gone for this gateway
            primary.enqueue(fixture_reply("error_529.json"))
            client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
            for _ in range(4):
                answer = client.messages.create(model="claude", max_tokens=20, messages=HELLO)
                assert answer.content
            time.sleep(2.5)  # the sync and listen tasks retried meanwhile
            for _ in range(2):
                assert client.messages.create(model="claude", max_tokens=20, messages=HELLO).content
            assert _posts(primary) == 1  # this instance's own cooldown held
            assert _cooldown(gw, "primary/claude") > 50
            lines = [json.loads(line) for line in gw.log().splitlines() if line.startswith("{")]
            warned = [
                ln for ln in lines if ln["msg"].startswith("shared routing health unavailable")
            ]
            assert len(warned) == 1, gw.log()
            client.close()
        finally:
            gw.stop()


def _served_by(client: anthropic.Anthropic) -> str:
    raw = client.messages.with_raw_response.create(model="fast", max_tokens=20, messages=HELLO)
    return raw.headers["x-llmrelay-model"]


def test_latency_routing_uses_the_figures_the_fleet_measured(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeAnthropic]
) -> None:
    slow, quick = fakes
    slow.latency_s = 0.5  # l1 answers half a second late
    with redis_prefix() as prefix:
        cfg = _config(tmp_path, slow, quick, {"url": REDIS_URL, "prefix": prefix})
        cfg["providers"]["l1"] = cfg["providers"]["primary"]
        cfg["providers"]["l2"] = cfg["providers"]["secondary"]
        cfg["models"]["fast"] = {
            "strategy": "latency",
            "targets": [{"model": "l1/claude"}, {"model": "l2/claude"}],
        }
        one = start_gateway(tmp_path, cfg)
        two = start_gateway(tmp_path, cfg)
        try:
            with anthropic.Anthropic(api_key=ALICE_KEY, base_url=one.url, max_retries=0) as c1:
                served: list[str] = []
                # The first instance measures both targets ...
                while len(set(served)) < 2 and len(served) < 30:
                    served.append(_served_by(c1))
                assert set(served) == {"l1/claude", "l2/claude"}
            time.sleep(2.5)  # ... and its figures reach the fleet (a sync a second)
            before = _posts(slow)
            with anthropic.Anthropic(api_key=ALICE_KEY, base_url=two.url, max_retries=0) as c2:
                # The second has measured nothing itself, yet never tries the slow target.
                assert [_served_by(c2) for _ in range(8)] == ["l2/claude"] * 8
            assert _posts(slow) == before
        finally:
            one.stop()
            two.stop()
