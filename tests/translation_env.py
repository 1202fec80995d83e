"""Fake Anthropic and OpenAI upstreams behind one gateway, for the cross-wire tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

ANTHROPIC_UPSTREAM_KEY = "sk-ant-upstream-xyz-1"
OPENAI_UPSTREAM_KEY = "sk-openai-upstream-xyz-2"
AZURE_UPSTREAM_KEY = "azure-upstream-xyz-3"


@dataclass
class XEnv:
    fake_anthropic: FakeAnthropic
    fake_openai: FakeOpenAI
    gw: GatewayProcess

    def anthropic(self, **kw: Any) -> anthropic.Anthropic:
        kw.setdefault("max_retries", 0)
        return anthropic.Anthropic(api_key=ALICE_KEY, base_url=self.gw.url, **kw)

    def openai(self, **kw: Any) -> openai.OpenAI:
        kw.setdefault("max_retries", 0)
        kw.setdefault("base_url", self.gw.url + "/v1")
        return openai.OpenAI(api_key=ALICE_KEY, **kw)


def make_xenv(tmp: Path) -> Iterator[XEnv]:
    fa = FakeAnthropic(expected_api_key=ANTHROPIC_UPSTREAM_KEY)
    fo = FakeOpenAI(expected_api_key=None)
    fa.start()
    fo.start()
    providers = {
        "anthropic": {
            "type": "anthropic",
            "base_url": fa.url,
            "api_key": ANTHROPIC_UPSTREAM_KEY,
            "models": {"claude": "claude-sonnet-4-6"},
        },
        "openai": {
            "type": "openai",
            "base_url": fo.url + "/v1",
            "api_key": OPENAI_UPSTREAM_KEY,
            "models": {
                "gpt": "gpt-4o-mini",
                "gpt-capped": {"id": "gpt-4o", "max_output_tokens": 16384},
                "llama": "meta-llama/Llama-3.1-8B-Instruct",
            },
            "timeouts": {"read_s": 10},
        },
        "azure": {
            "type": "azure_openai",
            "endpoint": fo.url,
            "api_key": AZURE_UPSTREAM_KEY,
            "api_version": "2024-10-21",
            "models": {"gpt": "my-gpt-deployment"},
        },
        "local": {"type": "mock", "models": {"echo": "echo"}},
    }
    try:
        gw = start_gateway(tmp, base_config(tmp, providers), "--log-level", "debug")
        try:
            yield XEnv(fa, fo, gw)
        finally:
            gw.stop()
    finally:
        fa.stop()
        fo.stop()
