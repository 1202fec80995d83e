"""Which settings a reload may not change (``reload.restart_only_changes``): each is named
by its key path, one level into a section."""

from __future__ import annotations

from typing import Any

from llmrelay.config import parse_settings
from llmrelay.reload import restart_only_changes
from tests.conftest import ALICE_KEY


def _settings(**overrides: Any) -> Any:
    config: dict[str, Any] = {
        "auth": {"keys": [{"name": "alice", "key": ALICE_KEY}]},
        "providers": {"local": {"type": "mock", "models": {"echo": "echo"}}},
        **overrides,
    }
    return parse_settings(config)


def test_live_settings_are_not_restart_only() -> None:
    new = _settings(
        providers={"local": {"type": "mock", "models": {"echo": "echo", "two": "two"}}},
        pricing={"echo": {"input": 1, "output": 2}},
        teams={"eng": {"limits": {"rpm": 5}}},
        translation={"default_max_tokens": 100},
    )
    assert restart_only_changes(_settings(), new) == []


def test_each_restart_only_change_is_named() -> None:
    new = _settings(
        server={"port": 4001, "max_connections": 5},
        database="sqlite:///other.db",
        logging={"level": "info"},
        governance={"key_refresh_s": 9},
        admin={"key": "sk-admin-0123456789abcdef"},
    )
    assert restart_only_changes(_settings(), new) == [
        "server.port",
        "server.max_connections",
        "database",
        "admin",
        "logging.level",
        "governance.key_refresh_s",
    ]
