"""A gateway with virtual models over scripted fakes, shared by the routing end-to-end tests.

Two Anthropic fakes stand for a primary and a secondary provider, an OpenAI fake for a
target of the other wire, a closed port for a provider that is down, and mock accounts for
spreading by weight. Cooldowns are off here (a threshold nobody reaches), so tests do not
affect each other; ``tests/test_routing_learning.py`` tests them on its own gateway.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, free_port, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

PRIMARY_MODEL = "claude-sonnet-4-6"
SECONDARY_MODEL = "claude-sonnet-4-6-secondary"
GPT_MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "Hello"}]


@dataclass
class RoutingEnv:
    primary: FakeAnthropic
    secondary: FakeAnthropic
    gpt: FakeOpenAI
    gw: GatewayProcess

    def anthropic(self, **kw: Any) -> anthropic.Anthropic:
        kw.setdefault("max_retries", 0)
        return anthropic.Anthropic(api_key=ALICE_KEY, base_url=self.gw.url, **kw)

    def openai(self, **kw: Any) -> openai.OpenAI:
        kw.setdefault("max_retries", 0)
        return openai.OpenAI(api_key=ALICE_KEY, base_url=self.gw.url + "/v1", **kw)

    def messages_to(self, fake: FakeAnthropic, since: int = 0) -> int:
        return len([r for r in fake.requests[since:] if r.method == "POST"])

    def usage_rows(self) -> list[dict[str, Any]]:
        """Every usage row so far (the writer flushes every 50 ms)."""
        time.sleep(0.2)
        db = sqlite3.connect(self.gw.usage_db)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]
        finally:
            db.close()

    def usage_row(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            db = sqlite3.connect(self.gw.usage_db)
            db.row_factory = sqlite3.Row
            try:
                found = db.execute("SELECT * FROM usage WHERE request_id = ?", (request_id,))
                row = found.fetchone()
            except sqlite3.OperationalError:
                row = None
            finally:
                db.close()
            if row is not None:
                out = dict(row)
                if out["attempt_log"] is not None:
                    out["attempt_log"] = json.loads(out["attempt_log"])
                return out
            time.sleep(0.05)
        raise AssertionError(f"no usage row for {request_id}")


def _anthropic(fake: FakeAnthropic, model: str, read_s: float) -> dict[str, Any]:
    return {
        "type": "anthropic",
        "base_url": fake.url,
        "api_key": "sk-ant-upstream",
        "models": {"claude": model},
        "timeouts": {"read_s": read_s},
    }


def _pair(first: str, second: str, **extra: Any) -> dict[str, Any]:
    return {
        "targets": [{"model": first, "priority": 1}, {"model": second, "priority": 2}],
        **extra,
    }


def make_routing_env(tmp: Path, server: dict[str, Any] | None = None) -> Iterator[RoutingEnv]:
    """The gateway and its fakes; ``server`` is the config's ``server`` section, if any."""
    primary, secondary, gpt = FakeAnthropic(), FakeAnthropic(), FakeOpenAI()
    for fake in (primary, secondary, gpt):
        fake.start()
    providers: dict[str, Any] = {
        "primary": _anthropic(primary, PRIMARY_MODEL, read_s=2),
        "secondary": _anthropic(secondary, SECONDARY_MODEL, read_s=10),
        "openai": {
            "type": "openai",
            "base_url": gpt.url + "/v1",
            "api_key": "sk-openai-upstream",
            "models": {"gpt": GPT_MODEL},
        },
        "dead": {
            "type": "anthropic",
            "base_url": f"http://127.0.0.1:{free_port()}",
            "api_key": "sk-ant-upstream",
            "models": {"claude": "claude-x"},
        },
        "m1": {"type": "mock", "models": {"echo": "echo"}},
        "m2": {"type": "mock", "models": {"echo": "echo"}},
        "failing": {
            "type": "mock",
            "models": {"echo": "echo"},
            "error_status": 529,
            "error_in_stream": True,
        },
    }
    models = {
        # Time limits below the primary's read_s, so that they are what cuts a slow attempt.
        "claude": _pair(
            "primary/claude", "secondary/claude", timeout_s=1.5, first_token_timeout_s=0.75
        ),
        "claude-retry": _pair(
            "primary/claude",
            "secondary/claude",
            retry={"attempts": 3, "backoff_ms": 10, "max_retry_after_s": 2},
        ),
        "claude-gpt": _pair("primary/claude", "openai/gpt"),
        "gpt-claude": _pair("openai/gpt", "primary/claude", first_token_timeout_s=0.5),
        "claude-deadline": _pair(
            "primary/claude", "secondary/claude", timeout_s=30, deadline_s=0.5
        ),
        "claude-dead": _pair("dead/claude", "secondary/claude"),
        "spread": {
            "strategy": "weight",
            "targets": [{"model": "m1/echo", "weight": 3}, {"model": "m2/echo", "weight": 1}],
        },
        "echo": _pair("failing/echo", "m1/echo"),
    }
    routing = {
        "cooldown": {"failures": 1000, "max_retry_after_s": 0},
        "rules": [
            {"match": {"key": "bob", "model": "spread"}, "model": "m2/echo"},
            {"match": {"metadata": {"tier": "batch"}}, "model": "m1/echo"},
        ],
    }
    try:
        config = base_config(tmp, providers, models=models, routing=routing)
        if server is not None:
            config["server"] = server
        gw = start_gateway(tmp, config, "--log-level", "info")
        try:
            yield RoutingEnv(primary, secondary, gpt, gw)
        finally:
            gw.stop()
    finally:
        for fake in (primary, secondary, gpt):
            fake.stop()
