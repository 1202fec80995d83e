"""The shipped Grafana dashboard asks only for series the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from llmrelay.config import MetricsConfig
from llmrelay.obs.metrics import GatewayState, Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "llmrelay.json"


def test_every_dashboard_query_names_an_exported_series() -> None:
    state = GatewayState(lambda: {}, lambda: False, lambda: {"m": 1.0}, lambda: 0)
    metrics = Metrics(MetricsConfig(), state)
    exported = {s.name for family in metrics.registry.collect() for s in family.samples} | {
        f.name for f in metrics.registry.collect()
    }
    # Histograms and counters export suffixed names once observed; count the bases too.
    exported |= {n + suffix for n in exported for suffix in ("_bucket", "_total")}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    asked = {
        name
        for p in panels
        for t in p["targets"]
        for name in re.findall(r"llmrelay_[a-z_]+", t["expr"])
    }
    assert asked, "the dashboard has no queries"
    assert asked <= exported, sorted(asked - exported)
