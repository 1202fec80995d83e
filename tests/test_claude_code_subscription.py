"""Claude Code in subscription mode through a real ``llmrelay serve`` (opt-in, like
``test_claude_code.py``): its own OAuth token (``CLAUDE_CODE_OAUTH_TOKEN``, what ``claude
setup-token`` prints for a Max/Team/Enterprise seat) reaches Anthropic, the gateway key
goes in ``ANTHROPIC_CUSTOM_HEADERS``, and the gateway key never goes upstream."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from .test_claude_code import (
    TEXT_REPLY,
    UPSTREAM_MODEL,
    ScriptedAnthropic,
    _diagnose,
    claude_bin,
    pytestmark,
    run_claude,
)

__all__ = ["claude_bin", "pytestmark"]  # the fixture and the opt-in mark, re-used

OAUTH = "sk-ant-oat01-claude-code-seat-token-0123456789abcdef"
MODEL = "seat/claude-3-5"


@pytest.fixture(scope="module")
def seat() -> Iterator[ScriptedAnthropic]:
    f = ScriptedAnthropic(expected_api_key=OAUTH)
    f.start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def gateway(
    seat: ScriptedAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("subscription-gateway")
    providers = {
        "seat": {
            "type": "anthropic",
            "base_url": seat.url,
            "auth": "passthrough",
            "models": {"claude-3-5": UPSTREAM_MODEL},
        }
    }
    gw = start_gateway(tmp, base_config(tmp, providers), "--log-level", "debug")
    yield gw
    gw.stop()


def test_a_subscription_turn_keeps_the_seats_token(
    claude_bin: Path, seat: ScriptedAnthropic, gateway: GatewayProcess, tmp_path: Path
) -> None:
    start = len(seat.requests)
    auth = {
        "CLAUDE_CODE_OAUTH_TOKEN": OAUTH,
        "ANTHROPIC_CUSTOM_HEADERS": f"x-llmrelay-key: {ALICE_KEY}",
    }
    run = run_claude(claude_bin, tmp_path, gateway.url, auth, "say hi", model=MODEL)
    requests = seat.requests[start:]
    diag = _diagnose(run, gateway, requests)
    assert run.returncode == 0, diag
    assert run.result()["result"] == TEXT_REPLY, diag
    sent = [r for r in requests if r.path == "/v1/messages"]
    assert sent, diag
    for req in sent:
        assert req.headers["authorization"] == f"Bearer {OAUTH}", diag
        assert "x-api-key" not in req.headers, diag
        assert ALICE_KEY not in json.dumps(req.headers), diag
        assert req.json()["model"] == UPSTREAM_MODEL, diag
    db = sqlite3.connect(gateway.usage_db)
    try:
        rows = db.execute(
            "SELECT key_name, provider, billing, cost_usd FROM usage WHERE provider = 'seat'"
        ).fetchall()
    finally:
        db.close()
    assert rows, diag
    assert all(r[:3] == ("alice", "seat", "subscription") for r in rows), rows
    assert OAUTH not in gateway.log()


def test_without_the_gateway_header_the_turn_fails_naming_it(
    claude_bin: Path, seat: ScriptedAnthropic, gateway: GatewayProcess, tmp_path: Path
) -> None:
    start = len(seat.requests)
    # The gateway key as Claude Code's own credential: nothing of the seat's to forward.
    run = run_claude(
        claude_bin, tmp_path, gateway.url, {"ANTHROPIC_API_KEY": ALICE_KEY}, "hi", model=MODEL
    )
    diag = _diagnose(run, gateway, seat.requests[start:])
    assert run.result()["is_error"] is True, diag
    assert "x-llmrelay-key" in run.stdout, diag
    assert not [r for r in seat.requests[start:] if r.path == "/v1/messages"], diag
