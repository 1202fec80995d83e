"""The parts of ``--workers N`` that need no processes: CPU count, metric merging, config."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from llmrelay.config import ServerConfig
from llmrelay.obs.metrics_peers import merge
from llmrelay.workers import Worker, available_cpus


def test_auto_workers_honour_the_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs → 2
    assert available_cpus(tmp_path) == min(2, available_cpus(tmp_path / "none"))


def test_auto_workers_honour_the_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")  # half a CPU → 1
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1


def test_an_unlimited_cgroup_leaves_the_affinity_mask(tmp_path: Path) -> None:
    import os

    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_server_workers_takes_auto_or_1_to_256() -> None:
    assert ServerConfig().workers == 1
    assert ServerConfig(workers="auto").workers == "auto"
    assert ServerConfig(workers=4).workers == 4
    with pytest.raises(ValueError, match="1 to 256"):
        ServerConfig(workers=0)


def test_per_worker_files_do_not_collide() -> None:
    w = Worker(2, 4, Path("/run/x"))
    assert w.file_for(Path("/d/usage.spill.jsonl")) == Path("/d/usage.spill.w2.jsonl")
    assert w.metrics_socket(3) == Path("/run/x/metrics-3.sock")


def _worker(requests: float, in_flight: float, fallback: float, started: float) -> list[Metric]:
    r = CounterMetricFamily("llmrelay_requests", "calls", labels=["status"])
    r.add_metric(["200"], requests)
    f = GaugeMetricFamily("llmrelay_in_flight_requests", "now")
    f.add_metric([], in_flight)
    fb = GaugeMetricFamily("llmrelay_counter_store_fallback", "fallback")
    fb.add_metric([], fallback)
    st = GaugeMetricFamily("process_start_time_seconds", "start")
    st.add_metric([], started)
    return [r, f, fb, st]


def test_merge_sums_counters_and_load_and_keeps_instance_gauges() -> None:
    merged = {m.name: m for m in merge([_worker(3, 1, 0, 200), _worker(4, 2, 1, 100)])}
    assert merged["llmrelay_requests"].samples[0].value == 7
    assert merged["llmrelay_requests"].samples[0].labels == {"status": "200"}
    assert merged["llmrelay_in_flight_requests"].samples[0].value == 3
    assert merged["llmrelay_counter_store_fallback"].samples[0].value == 1  # max
    assert merged["process_start_time_seconds"].samples[0].value == 100  # min


def test_check_config_says_how_many_workers_and_who_keeps_the_counters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from llmrelay.cli import main
    from tests.conftest import base_config

    cfg = base_config(tmp_path, {"m": {"type": "mock", "models": {"echo": "echo"}}})
    cfg["server"]["workers"] = 3
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  counters: kept by the supervisor for every worker\n" in out
    assert "  workers: 3\n" in out
