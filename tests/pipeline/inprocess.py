"""The gateway app in this process, on a real socket, for tests that inject faults into its
own parts (a provider that raises, a router that breaks) — what no fake upstream can do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestServer

from llmrelay.app import GATEWAY, Gateway, build_app
from llmrelay.config import load_settings
from llmrelay.pipeline.call import Call
from tests.conftest import ALICE_KEY


class Calls:
    """An observer that keeps every ended call's row."""

    def __init__(self) -> None:
        self.ended: list[Call] = []

    def call_started(self, call: Call) -> None:
        pass

    def call_ended(self, call: Call) -> None:
        self.ended.append(call)


@dataclass
class InProcess:
    url: str
    gateway: Gateway
    calls: Calls


@asynccontextmanager
async def gateway_in_process(tmp: Path, **overrides: Any) -> AsyncIterator[InProcess]:
    """A gateway with one ``mock`` account ``local`` (models ``echo``) and the key
    ``ALICE_KEY``; ``overrides`` replace top-level config sections."""
    config: dict[str, Any] = {
        "auth": {"keys": [{"name": "alice", "key": ALICE_KEY}]},
        "providers": {"local": {"type": "mock", "models": {"echo": "echo"}}},
        "usage": {"path": str(tmp / "usage.db"), "flush_interval_s": 0.05},
    }
    config.update(overrides)
    path = tmp / "llmrelay.yaml"
    path.write_text(yaml.safe_dump(config))
    app = build_app(load_settings(path))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    gateway = app[GATEWAY]
    calls = Calls()
    gateway.observers = (*gateway.observers, calls)
    try:
        yield InProcess(str(server.make_url("")).rstrip("/"), gateway, calls)
    finally:
        await server.close()
