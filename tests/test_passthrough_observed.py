"""Passthrough calls are seen by metrics and traces like any other call."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ALICE_KEY, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.gateway_env import raw_request
from tests.obs.otlp_receiver import OTLPReceiver


def test_metrics_and_traces_see_a_passthrough_call(tmp_path: Path) -> None:
    with FakeAnthropic() as fake, OTLPReceiver() as otlp, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        providers: dict[str, Any] = {
            "anthropic": {
                "type": "anthropic",
                "base_url": fake.url,
                "api_key": "sk-ant-upstream",
                "models": {"claude": "claude-sonnet-4-6"},
            }
        }
        observability = {"metrics": {"enabled": True}, "tracing": {"endpoint": otlp.endpoint}}
        gw = start_gateway(tmp_path, base_config(tmp_path, providers, observability=observability))
        try:
            status, _, _ = raw_request(
                f"{gw.url}/proxy/anthropic/v1/files", headers={"x-api-key": ALICE_KEY}, method="GET"
            )
            assert status == 200
            with urllib.request.urlopen(f"{gw.url}/metrics", timeout=10) as r:
                metrics = r.read().decode()
            deadline = time.monotonic() + 10
            while otlp.requests < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            log = gw.log()
        finally:
            gw.stop()
    line = next(
        (m for m in metrics.splitlines() if "llmrelay_requests_total{" in m and "anthropic" in m),
        None,
    )
    assert line is not None, metrics
    assert line.rstrip().endswith(" 1") or line.rstrip().endswith(" 1.0"), line
    assert otlp.requests >= 1
    assert "call observer failed" not in log
