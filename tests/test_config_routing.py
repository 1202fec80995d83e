"""Config of virtual models and routing rules: the issue's shape loads; mistakes are named
with file, key and expectation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmrelay.config import ConfigError, load_settings

BASE = """
auth:
  keys: [{name: alice, key: sk-alice-12345678}]
providers:
  anthropic: {type: mock, models: {claude-sonnet: claude-sonnet-4-5}}
  bedrock: {type: mock, models: {claude-sonnet: us.anthropic.claude-sonnet-4-5}}
  vertex: {type: mock, models: {claude-sonnet: claude-sonnet-4-5@20250929}}
"""

ISSUE = (
    BASE
    + """
models:
  claude-sonnet:
    strategy: priority        # priority | weight | latency
    targets:
      - {model: anthropic/claude-sonnet, priority: 1}
      - {model: bedrock/claude-sonnet,   priority: 2}
      - {model: vertex/claude-sonnet,    priority: 2, weight: 3}
    retry: {attempts: 2, on_status: [429, 500, 502, 503, 504, 529], backoff_ms: 200,
            use_retry_after: true}
    timeout_s: 600
    first_token_timeout_s: 20
    fallback_on: [429, 5xx, timeout, connect_error, overloaded]
routing:
  rules:
    - {match: {key: alice, metadata: {tier: batch}}, model: vertex/claude-sonnet}
"""
)


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "llmrelay.yaml"
    p.write_text(text)
    return p, load_settings(p)


def error_of(tmp_path: Path, text: str) -> str:
    p = tmp_path / "llmrelay.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    message = str(e.value)
    assert all(line.startswith(f"{p}: ") for line in message.splitlines()), message
    return message


def test_the_issue_shape_loads_with_documented_defaults(tmp_path: Path) -> None:
    _, s = load(tmp_path, ISSUE)
    vm = s.models["claude-sonnet"]
    assert [t.model for t in vm.targets][2] == "vertex/claude-sonnet"
    assert vm.targets[2].weight == 3 and vm.targets[0].weight == 1
    assert vm.retry.attempts == 2 and vm.retry.max_retry_after_s == 30
    assert vm.first_token_timeout_s == 20 and vm.deadline_s == 600
    assert vm.affinity.enabled and vm.affinity.ttl_s == 3600
    assert s.routing.session_header == "X-Claude-Code-Session-Id"
    assert s.routing.cooldown.failures == 3 and s.routing.cooldown.seconds == 30
    assert s.routing.rules[0].match.metadata == {"tier": "batch"}


def test_defaults_of_a_minimal_virtual_model(tmp_path: Path) -> None:
    _, s = load(tmp_path, BASE + "models:\n  c: {targets: [{model: anthropic/claude-sonnet}]}\n")
    vm = s.models["c"]
    assert vm.strategy == "priority" and vm.retry.attempts == 1
    assert vm.fallback_on == [429, "5xx", "timeout", "connect_error", "overloaded"]
    assert vm.timeout_s == 600 and vm.first_token_timeout_s is None


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            "c: {targets: [{model: anthropic/claude-opus}]}",
            "models.c.targets[0].model: 'anthropic/claude-opus' is not a model of any provider "
            "account (known: anthropic/claude-sonnet, bedrock/claude-sonnet, "
            "vertex/claude-sonnet)",
        ),
        (
            "anthropic/claude-sonnet: {targets: [{model: bedrock/claude-sonnet}]}",
            "models.anthropic/claude-sonnet: the name is already the model "
            "'anthropic/claude-sonnet' of provider account 'anthropic'",
        ),
        (
            "bedrock/new: {targets: [{model: bedrock/claude-sonnet}]}",
            "models.bedrock/new: the name starts with 'bedrock/' like the models of provider "
            "account 'bedrock'; pick another name",
        ),
        (
            "c: {targets: []}",
            "models.c.targets: expected at least one target",
        ),
        (
            "c: {targets: [{model: vertex/claude-sonnet}, {model: vertex/claude-sonnet}]}",
            "models.c.targets: target 'vertex/claude-sonnet' is listed twice",
        ),
        (
            "c: {targets: [{model: vertex/claude-sonnet}]}\n  d: {targets: [{model: c}]}",
            "models.d.targets[0].model: 'c' is a virtual model; targets must be account/model "
            "names",
        ),
        (
            "c: {strategy: fastest, targets: [{model: vertex/claude-sonnet}]}",
            "models.c.strategy: expected 'priority', 'weight' or 'latency'; found a string "
            "'fastest'",
        ),
        (
            "c: {fallback_on: [5xx, 6xx], targets: [{model: vertex/claude-sonnet}]}",
            "models.c.fallback_on: expected statuses (400-599) or 4xx, 5xx, timeout, "
            "connect_error, overloaded; '6xx' is neither",
        ),
        (
            "c: {retry: {on_status: [200]}, targets: [{model: vertex/claude-sonnet}]}",
            "models.c.retry.on_status: expected HTTP error statuses (400-599); 200 is not one",
        ),
        (
            "c: {targets: [{model: vertex/claude-sonnet, weight: 0}]}",
            "models.c.targets[0].weight: Input should be greater than 0",
        ),
        (
            "c: {targets: [{model: vertex/claude-sonnet}], timeouts: 3}",
            "models.c.timeouts: unknown key",
        ),
    ],
)
def test_mistakes_name_file_key_and_expectation(tmp_path: Path, models: str, message: str) -> None:
    assert message in error_of(tmp_path, BASE + "models:\n  " + models + "\n")


def test_a_rule_must_route_to_a_known_model(tmp_path: Path) -> None:
    text = BASE + "routing:\n  rules: [{match: {key: bob}, model: claude-fast}]\n"
    assert "routing.rules[0].model: 'claude-fast' is neither a virtual model nor an " in (
        error_of(tmp_path, text)
    )


def test_every_cross_check_problem_is_listed(tmp_path: Path) -> None:
    text = (
        BASE
        + "models:\n  a: {targets: [{model: x/y}]}\n  b: {targets: [{model: y/z}]}\n"
        + "routing:\n  rules: [{model: nowhere}]\n"
    )
    assert len(error_of(tmp_path, text).splitlines()) == 3


def test_check_config_prints_virtual_models_and_rules(tmp_path: Path) -> None:
    p, _ = load(tmp_path, ISSUE)
    out = subprocess.run(
        [sys.executable, "-m", "llmrelay", "check-config", str(p)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        "claude-sonnet -> priority: anthropic/claude-sonnet (priority 1, weight 1), "
        "bedrock/claude-sonnet (priority 2, weight 1), vertex/claude-sonnet (priority 2, "
        "weight 3)" in out
    )
    assert "rule 0: {'key': 'alice', 'metadata': {'tier': 'batch'}} -> vertex/claude-sonnet" in out
