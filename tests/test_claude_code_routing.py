"""Claude Code (the real CLI) through a virtual model: a turn succeeds while the primary
provider is overloaded. Opt-in like ``tests/test_claude_code.py`` (whose CLI install and
runner it reuses): set ``LLMRELAY_TEST_CLAUDE_CODE=1``.

The primary fake answers every ``/v1/messages`` with 529 (first test) or with HTTP 200 and an
``overloaded_error`` first event (second test, the first-chunk gate); the secondary fake
answers as :class:`ScriptedAnthropic` does. Claude Code must not notice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from .fakes.anthropic_upstream import Reply, fixture_reply, stream_error_reply
from .test_claude_code import (
    TEXT_REPLY,
    UPSTREAM_KEY,
    UPSTREAM_MODEL,
    ScriptedAnthropic,
    _assert_ok,
    _assert_passthrough,
    _diagnose,
    _messages_requests,
    run_claude,
)
from .test_claude_code import claude_bin as claude_bin  # the fixture, shared

pytestmark = pytest.mark.skipif(
    os.environ.get("LLMRELAY_TEST_CLAUDE_CODE") != "1",
    reason="runs the real Claude Code CLI (npm install, ~400 MB); set LLMRELAY_TEST_CLAUDE_CODE=1",
)

MODEL = "routed/claude-3-5"


class OverloadedAnthropic(ScriptedAnthropic):
    """Answers every Messages call with an overload: a 529, or a 200 stream whose first
    event is ``overloaded_error`` (``in_stream``)."""

    in_stream = False

    def _default_message(self, raw: bytes) -> Reply:
        if self.in_stream and b'"stream":true' in raw.replace(b" ", b""):
            return stream_error_reply(529, "Overloaded")
        return fixture_reply("error_529.json")


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[OverloadedAnthropic, ScriptedAnthropic]]:
    primary = OverloadedAnthropic(expected_api_key=UPSTREAM_KEY)
    secondary = ScriptedAnthropic(expected_api_key=UPSTREAM_KEY)
    primary.start()
    secondary.start()
    yield primary, secondary
    primary.stop()
    secondary.stop()


@pytest.fixture(scope="module")
def gateway(
    fakes: tuple[OverloadedAnthropic, ScriptedAnthropic],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gateway")
    providers = {
        name: {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": UPSTREAM_KEY,
            "models": {"claude-3-5": UPSTREAM_MODEL},
        }
        for name, fake in zip(("primary", "secondary"), fakes, strict=True)
    }
    models = {
        MODEL: {
            "targets": [
                {"model": "primary/claude-3-5", "priority": 1},
                {"model": "secondary/claude-3-5", "priority": 2},
            ],
            "first_token_timeout_s": 20,
        }
    }
    # No cooldown, so every Claude Code session meets the overloaded primary first.
    routing = {"cooldown": {"failures": 1000, "max_retry_after_s": 0}}
    config = base_config(tmp, providers, models=models, routing=routing)
    gw = start_gateway(tmp, config, "--log-level", "info")
    yield gw
    gw.stop()


@pytest.mark.parametrize("in_stream", [False, True], ids=["529", "overloaded-first-event"])
def test_a_turn_succeeds_while_the_primary_is_overloaded(
    claude_bin: Path,
    fakes: tuple[OverloadedAnthropic, ScriptedAnthropic],
    gateway: GatewayProcess,
    tmp_path: Path,
    in_stream: bool,
) -> None:
    primary, secondary = fakes
    primary.in_stream = in_stream
    p, s = len(primary.requests), len(secondary.requests)
    auth = {"ANTHROPIC_AUTH_TOKEN": ALICE_KEY}
    run = run_claude(claude_bin, tmp_path, gateway.url, auth, "say hi", model=MODEL)
    diag = _diagnose(run, gateway, primary.requests[p:] + secondary.requests[s:])
    assert _assert_ok(run, diag)["result"] == TEXT_REPLY, diag
    tried = _messages_requests(primary, p)
    served = _messages_requests(secondary, s)
    assert tried and served, diag
    # Both targets got Claude Code's request as a passthrough, from the same client body.
    for req in tried + served:
        _assert_passthrough(req, ALICE_KEY)
    assert tried[0].json()["messages"] == served[0].json()["messages"], diag
    # The session id pins the session to the target that served it: later calls of the
    # same session skip the overloaded primary.
    sessions = {r.headers.get("x-claude-code-session-id") for r in served}
    assert len(tried) <= len(sessions), diag
    assert '"msg":"attempt failed"' in gateway.log(), diag
