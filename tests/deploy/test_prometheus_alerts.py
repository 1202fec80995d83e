"""deploy/prometheus: the scrape config loads the alert rules, and every llmrelay series an
alert reads is one a running gateway's /metrics exposes and docs/observability.md lists; a
renamed metric would otherwise leave an alert that never fires."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ALICE_KEY, GatewayProcess, base_config
from tests.gateway_env import raw_request

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_prometheus_loads_every_rule_file() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    for name in config["rule_files"]:
        assert (PROMETHEUS / name).is_file()


def test_every_alert_has_a_severity_and_a_summary() -> None:
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names)) >= 10
    for rule in rules():
        assert rule["labels"]["severity"] in {"page", "ticket", "info"}
        assert rule["annotations"]["summary"]


def exposed_series(gateway_factory: Any, tmp: Path) -> set[str]:
    """Every series name on /metrics (samples and ``# TYPE`` lines) after one call through a
    virtual model (so that per-target series exist too)."""
    providers = {"local": {"type": "mock", "models": {"echo": "echo"}}}
    virtual = {"echo": {"targets": [{"model": "local/echo"}]}}
    gw: GatewayProcess = gateway_factory(base_config(tmp, providers, models=virtual))
    body = b'{"model": "echo", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}'
    status, _, _ = raw_request(
        gw.url + "/v1/messages", body, {"x-api-key": ALICE_KEY, "content-type": "application/json"}
    )
    assert status == 200
    status, _, text = raw_request(gw.url + "/metrics", method="GET")
    assert status == 200
    return set(re.findall(r"^(?:# TYPE )?(llmrelay_[a-z_]+)", text.decode(), re.MULTILINE))


def test_alerts_read_only_series_the_gateway_exports(gateway_factory: Any, tmp_path: Path) -> None:
    exported = exposed_series(gateway_factory, tmp_path)
    documented = (ROOT / "docs" / "observability.md").read_text()
    used: set[str] = set()
    for rule in rules():
        for series in re.findall(r"\bllmrelay_[a-z_]+", rule["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", series)
            used.add(base)
            assert f"`{base}`" in documented, f"{rule['alert']}: {base} is not documented"
            assert series in exported, f"{rule['alert']}: /metrics has no {series}"
    assert "llmrelay_usage_rows_dropped_total" in used
