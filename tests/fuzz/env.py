"""The gateway the ingress fuzz runs against: its config, its secrets and what it routes.

Two config keys (``narrow``: a few models; ``metered``: rate limits and a small budget), an
admin key, the metrics endpoint open, a ``mock`` account, an Anthropic-wire and an
OpenAI-wire account on fakes, an account on a closed port, two virtual models, a routing
rule on the metadata header, and small server bounds so slow and large cases end fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

__all__ = [
    "ADMIN_KEY",
    "ALL_MODELS",
    "GATEWAY_KEYS",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "MAX_DEPTH",
    "SECRETS",
    "config",
    "fault_models",
]

# Secrets in several shapes: the gateway masks known key shapes (sk-...) in provider
# errors and every configured credential whatever its shape; both kinds are here.
NARROW_KEY = "sk-fuzz-narrow-5e1c0a9b27d84f36"
METERED_KEY = "gw-metered-key-c4a1f09e7b3d2856"
ADMIN_KEY = "adm-fuzz-admin-8d2f6b1e9c0a7354"
ANT_UPSTREAM_KEY = "upstream-ant-3f9b2c7d1e8a6054"
OAI_UPSTREAM_KEY = "sk-fuzz-openai-upstream-9a7c5e3b1d"
DEAD_UPSTREAM_KEY = "dead-upstream-b6e2d9f4a1c87035"

#: Key name -> secret, for the two config keys.
GATEWAY_KEYS = {"narrow": NARROW_KEY, "metered": METERED_KEY}
#: Everything no response, header or log line may contain.
SECRETS = (
    NARROW_KEY,
    METERED_KEY,
    ADMIN_KEY,
    ANT_UPSTREAM_KEY,
    OAI_UPSTREAM_KEY,
    DEAD_UPSTREAM_KEY,
)

MAX_BODY = 256 * 1024  # server.max_request_body_mb: 0.25
MAX_CONNECTIONS = 16  # server.max_connections
MAX_DEPTH = 32  # server.max_json_depth

#: Public model names the gateway routes (account/model and virtual).
ALL_MODELS = ("local/echo", "ant/claude", "oai/gpt", "dead/claude", "smart", "duo")


def fault_models() -> dict[str, str]:
    """Model -> the fault always there behind it: ``dead/claude`` is on a closed port
    (502, or 503 while cooling down)."""
    return {"dead/claude": "closed port"}


def config(tmp: Path, ant: FakeAnthropic, oai: FakeOpenAI) -> dict[str, Any]:
    timeouts = {"connect_s": 1, "read_s": 1, "total_s": 5}
    return {
        "server": {
            "max_request_body_mb": MAX_BODY / (1024 * 1024),
            "header_timeout_s": 1,
            "body_timeout_s": 1,
            "max_json_depth": MAX_DEPTH,
            "max_connections": MAX_CONNECTIONS,
            "shutdown_grace_s": 0,
        },
        "auth": {
            "keys": [
                {
                    "name": "narrow",
                    "key": NARROW_KEY,
                    "models": ["local/echo", "ant/claude", "oai/gpt", "smart"],
                },
                {
                    "name": "metered",
                    "key": METERED_KEY,
                    "team": "meter",
                    "limits": {"rpm": 600, "tpm": 400_000},
                    "budget": {"usd": 5.0, "period": "day"},
                },
            ]
        },
        "admin": {"key": ADMIN_KEY},
        "providers": {
            "local": {"type": "mock", "models": {"echo": "echo"}},
            "ant": {
                "type": "anthropic",
                "base_url": ant.url,
                "api_key": ANT_UPSTREAM_KEY,
                "models": {"claude": "claude-sonnet-4-6"},
                "timeouts": timeouts,
            },
            "oai": {
                "type": "openai",
                "base_url": oai.url + "/v1",
                "api_key": OAI_UPSTREAM_KEY,
                "models": {"gpt": {"id": "gpt-4o-mini", "max_output_tokens": 16384}},
                "timeouts": timeouts,
            },
            "dead": {
                "type": "anthropic",
                "base_url": f"http://127.0.0.1:{free_port()}",
                "api_key": DEAD_UPSTREAM_KEY,
                "models": {"claude": "claude-x"},
                "timeouts": timeouts,
            },
        },
        "models": {
            "smart": {
                "targets": [
                    {"model": "dead/claude", "priority": 1},
                    {"model": "local/echo", "priority": 2},
                ],
                "timeout_s": 3,
                "deadline_s": 6,
            },
            "duo": {
                "targets": [
                    {"model": "ant/claude", "priority": 1},
                    {"model": "oai/gpt", "priority": 2},
                ],
                "retry": {"attempts": 2, "backoff_ms": 1},
                "timeout_s": 3,
                "deadline_s": 6,
            },
        },
        "routing": {"rules": [{"match": {"metadata": {"route": "cheap"}}, "model": "local/echo"}]},
        "pricing": {
            "echo": {"input": 10, "output": 10},
            "claude-sonnet-4-6": {"input": 3, "output": 15},
            "gpt-4o-mini": {"input": 0.15, "output": 0.6},
        },
        "observability": {"request_log": {"bodies_by_key": {"narrow": "all"}}},
        "usage": {"path": str(tmp / "usage.db"), "flush_interval_s": 0.05},
    }
