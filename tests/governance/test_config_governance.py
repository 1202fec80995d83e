"""Governance settings: errors name the file, the key and what was expected; no secret is
ever printed; check-config shows the policy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmrelay.config import ConfigError, load_settings

BASE = """
auth:
  keys:
    - name: alice
      key: sk-alice-12345678
providers:
  mock:
    type: mock
    models: {echo: echo}
"""
ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "llmrelay.yaml"
    p.write_text(text)
    return p


def test_full_governance_config_loads(tmp_path: Path) -> None:
    text = BASE.replace(
        "      key: sk-alice-12345678",
        "      key: sk-alice-12345678\n      team: ml\n      models: [mock/echo]\n"
        "      limits: {rpm: 60, tpd: 1000000}\n      budget: {usd: 5, period: day}",
    ).replace("    models: {echo: echo}", "    models: {echo: {id: echo, limits: {rpm: 100}}}")
    text += """
database: postgresql://llmrelay@db.internal/llmrelay
redis: redis://cache.internal:6379/0
admin: {key: sk-admin-0123456789abcdef}
teams:
  ml: {limits: {rpm: 1000}, budget: {usd: 100, period: month, mode: audit}}
pricing:
  echo: {input: 3, output: 15}
governance: {fail_closed: true, key_refresh_s: 5}
"""
    s = load_settings(write(tmp_path, text), env=ENV)
    assert s.auth.keys[0].limits.rpm == 60 and s.auth.keys[0].budget is not None
    assert s.redis is not None and s.redis.url == "redis://cache.internal:6379/0"
    assert s.redis.prefix == "llmrelay:"
    assert s.teams["ml"].budget is not None and s.teams["ml"].budget.mode == "audit"
    assert s.pricing["echo"].cache_read is None
    assert s.database_url() == "postgresql://llmrelay@db.internal/llmrelay"


def test_sqlite_database_is_relative_to_the_config_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, BASE + "database: sqlite:///data/gw.db\n"), env=ENV)
    assert s.database_url() == f"sqlite:///{tmp_path / 'data' / 'gw.db'}"
    s = load_settings(write(tmp_path, BASE), env=ENV)
    assert s.database_url() == f"sqlite:///{tmp_path / 'llmrelay-usage.db'}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "database: mysql://x/y\n",
            "database: expected sqlite:///path/to/file.db or postgresql://",
        ),
        ("redis: http://cache:6379\n", "redis.url: expected a redis://, rediss:// or unix:// URL"),
        ("admin: {key: short}\n", "admin.key:"),
        ("teams: {ml: {limits: {rpm: 0}}}\n", "teams.ml.limits.rpm:"),
        ("teams: {ml: {budget: {usd: 5, period: year}}}\n", "teams.ml.budget.period:"),
        ("teams: {ml: {budget: {period: day}}}\n", "teams.ml.budget.usd: required key is missing"),
        ("pricing: {echo: {input: -1, output: 1}}\n", "pricing.echo.input:"),
        ("governance: {key_refresh_s: 0}\n", "governance.key_refresh_s:"),
        ("governance: {fail_open: true}\n", "governance.fail_open: unknown key"),
        ("redis: 'redis://u:pw@[::1/0'\n", "redis.url: expected a redis:// URL with a valid host"),
        ("teams: {ml: {budget: {usd: .inf}}}\n", "teams.ml.budget.usd:"),
        ("teams: {ml: {budget: {usd: .nan}}}\n", "teams.ml.budget.usd:"),
        ("teams: {ml: {limits: {rpm: 10000000000000000000000}}}\n", "teams.ml.limits.rpm:"),
        ("governance: {key_refresh_s: -1}\n", "greater than 0; found int -1"),
    ],
)
def test_bad_governance_config_names_file_key_and_expectation(
    tmp_path: Path, extra: str, message: str
) -> None:
    p = write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as e:
        load_settings(p, env=ENV)
    assert str(e.value).startswith(f"{p}: ")
    assert message in str(e.value)


def test_admin_key_and_redis_password_never_appear_in_errors(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "admin: {key: [sk-admin-secret-value-9]}\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p, env=ENV)
    assert "admin.key" in str(e.value) and "sk-admin-secret-value-9" not in str(e.value)


def test_check_config_shows_keys_policy_and_state(tmp_path: Path) -> None:
    text = BASE.replace(
        "      key: sk-alice-12345678",
        "      key: sk-alice-12345678\n      team: ml\n      limits: {rpm: 60}",
    )
    text += "redis: {url: 'redis://:pw-secret@cache:6379/0', prefix: 'gw:'}\n"
    text += "teams: {ml: {budget: {usd: 100}}}\n"
    out = subprocess.run(
        [sys.executable, "-m", "llmrelay", "check-config", str(write(tmp_path, text))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "alice: team ml, rpm=60" in out
    assert "team ml: budget $100/month (enforce)" in out
    assert "counters: redis redis://cache:6379/0 (prefix gw:)" in out
    assert "pw-secret" not in out and "sk-alice" not in out
    text += "database: 'postgresql://u@db/x?password=pg-secret-1'\n"
    out = subprocess.run(
        [sys.executable, "-m", "llmrelay", "check-config", str(write(tmp_path, text))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "pg-secret-1" not in out and "database: postgresql://u@db/x?password=***" in out


def test_passwords_in_urls_never_appear_in_errors(tmp_path: Path) -> None:
    for extra in (
        "database: mysql://u:supersecretpw@h/x\n",
        "redis: http://:supersecretpw@h:6379/0\n",
    ):
        p = write(tmp_path, BASE + extra)
        with pytest.raises(ConfigError) as e:
            load_settings(p, env=ENV)
        assert "supersecretpw" not in str(e.value), str(e.value)
