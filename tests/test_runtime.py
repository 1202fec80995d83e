"""The configuration in force as one object (``llmrelay/runtime.py``): a reload shares the
pools of unchanged accounts, carries routing state over when its settings are the same,
and closes a replaced pool only after the last call that pinned it has ended."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from llmrelay.config import Settings, parse_settings
from llmrelay.runtime import Runtime
from tests.conftest import ALICE_KEY
from tests.pipeline.inprocess import gateway_in_process


def _settings(source: Settings, **overrides: Any) -> Settings:
    config: dict[str, Any] = {
        "auth": {"keys": [{"name": "alice", "key": ALICE_KEY}]},
        "providers": {"local": {"type": "mock", "models": {"echo": "echo"}}},
        "usage": source.usage.model_dump(),
        **overrides,
    }
    return parse_settings(config, source=source.source)


async def _until(predicate: Any) -> None:
    """Wait (at most 5 s) for what the gateway does in the background."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_an_unchanged_account_keeps_its_pool_and_routing_state(tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path) as gw:
            gateway = gw.gateway
            before = gateway.runtime
            after = await gateway.apply(
                _settings(before.settings, pricing={"echo": {"input": 1, "output": 2}})
            )
            assert gateway.pin() is after is not before
            assert after.pools["local"] is before.pools["local"]
            await _until(lambda: after.pools["local"].holders == 1)  # the old one let go
            assert not after.pools["local"].closed
            assert after.router.health is before.router.health
            assert after.policy is not before.policy
            assert after.policy.prices.get("echo") is not None

            changed = await gateway.apply(
                _settings(before.settings, routing={"cooldown": {"failures": 7}})
            )
            assert changed.router.health is not after.router.health
            assert changed.pools["local"] is before.pools["local"]

    asyncio.run(main())


def test_a_replaced_pool_closes_after_the_last_call_that_pinned_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path) as gw:
            gateway = gw.gateway
            old: Runtime = gateway.pin()
            old.call_started()  # a call in flight on the old configuration
            pool = old.pools["local"]
            new = await gateway.apply(
                _settings(
                    old.settings,
                    providers={"local": {"type": "mock", "models": {"echo": "echo", "b": "b"}}},
                )
            )
            assert new.pools["local"] is not pool
            assert old.retired and not pool.closed  # the call still uses it
            await asyncio.sleep(0.05)
            assert not pool.closed
            old.call_ended()
            await _until(lambda: pool.closed)
            assert not new.pools["local"].closed

    asyncio.run(main())


def test_the_config_keys_change_with_a_reload(tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path) as gw:
            gateway = gw.gateway
            carol = "sk-test-carol-0123456789abcdef"
            keys = {"keys": [{"name": "carol", "key": carol}]}
            await gateway.apply(_settings(gateway.settings, auth=keys))
            assert gateway.keys.authenticate({"x-api-key": carol}).name == "carol"
            try:
                gateway.keys.authenticate({"x-api-key": ALICE_KEY})
            except Exception as err:
                assert "invalid gateway key" in str(err)
            else:
                raise AssertionError("alice's key is still accepted")

    asyncio.run(main())
