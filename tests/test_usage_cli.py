"""``llmrelay usage``: totals with cost, grouped by --by, filtered by --since."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from llmrelay.cli import main
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import UsageRecord

CONFIG = """\
auth:
  keys:
    - name: local
      key: sk-test-0123456789abcdef
providers:
  mock:
    type: mock
    models:
      echo: echo
usage:
  path: usage.db
"""
DAY1 = calendar.timegm((2025, 3, 1, 12, 0, 0))


def rec(
    ts: float, key: str, model: str, cost: float | None, team: str | None = None
) -> UsageRecord:
    return UsageRecord(
        ts=ts,
        request_id=f"req_{ts}_{key}",
        key_name=key,
        model=model,
        provider="mock",
        provider_model="echo",
        endpoint="messages",
        stream=False,
        status=200,
        input_tokens=10,
        output_tokens=5,
        latency_s=0.25,
        team=team,
        cost_usd=cost,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "llmrelay.yaml"
    path.write_text(CONFIG)
    return path


def usage(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[list[str]]:
    assert main(["usage", "--config", str(config), *args]) == 0
    return [line.split() for line in capsys.readouterr().out.splitlines()]


def test_missing_file_says_so(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert usage(config, capsys)[0][:4] == ["no", "usage", "recorded", "yet"]


def test_totals_by_key_and_model_with_cost(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SQLiteUsageStore(config.parent / "usage.db")
    store.write(
        [
            rec(DAY1, "alice", "mock/echo", 0.5),
            rec(DAY1 + 1, "alice", "mock/echo", 0.25),
            rec(DAY1 + 2, "bob", "mock/echo", None),
        ]
    )
    store.close()
    header, alice, bob = usage(config, capsys)
    assert header == [
        "key", "model", "requests", "errors", "input", "output",
        "cache_write", "cache_read", "cost_usd", "avg_latency_ms",
    ]  # fmt: skip
    assert alice == ["alice", "mock/echo", "2", "0", "20", "10", "0", "0", "0.750000", "250.0"]
    # No price known: the cost cell is blank.
    assert bob == ["bob", "mock/echo", "1", "0", "10", "5", "0", "0", "250.0"]


def test_a_long_model_name_does_not_widen_the_table(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SQLiteUsageStore(config.parent / "usage.db")
    store.write([rec(DAY1, "alice", "x" * 200 + "\nnext", None), rec(DAY1, "bob", "m", None)])
    store.close()
    assert main(["usage", "--config", str(config), "--by", "model"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header and two groups: the newline did not split a row
    junk = next(line for line in lines if line.startswith("x"))
    assert junk.split()[0] == "x" * 63 + "…"
    assert max(len(line) for line in lines) < 150


def test_by_team_and_day(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = SQLiteUsageStore(config.parent / "usage.db")
    store.write(
        [
            rec(DAY1, "alice", "m", 1.0, team="t1"),
            rec(DAY1 + 86400, "alice", "m", 2.0, team="t1"),
            rec(DAY1 + 86400, "bob", "m", 4.0, team="t2"),
        ]
    )
    store.close()
    rows = usage(config, capsys, "--by", "team,day")
    assert rows[0][:3] == ["team", "day", "requests"]
    assert [(r[0], r[1], r[2], r[-2]) for r in rows[1:]] == [
        ("t1", "2025-03-01", "1", "1.000000"),
        ("t1", "2025-03-02", "1", "2.000000"),
        ("t2", "2025-03-02", "1", "4.000000"),
    ]


def test_since_a_span_or_a_date(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    store = SQLiteUsageStore(config.parent / "usage.db")
    store.write(
        [
            rec(DAY1, "alice", "m", 1.0),
            rec(now - 3600, "alice", "m", 2.0),
            rec(now - 60, "bob", "m", 4.0),
        ]
    )
    store.close()
    rows = usage(config, capsys, "--by", "key", "--since", "2h")
    assert [(r[0], r[1], r[-2]) for r in rows[1:]] == [
        ("alice", "1", "2.000000"),
        ("bob", "1", "4.000000"),
    ]
    rows = usage(config, capsys, "--by", "key", "--since", "30m")
    assert [r[0] for r in rows[1:]] == ["bob"]
    rows = usage(config, capsys, "--by", "model", "--since", "2025-03-01")
    assert [(r[0], r[1]) for r in rows[1:]] == [("m", "3")]
    rows = usage(config, capsys, "--by", "model", "--since", "2025-03-02")
    assert [(r[0], r[1]) for r in rows[1:]] == [("m", "2")]


@pytest.mark.parametrize("args", [["--by", "provider"], ["--since", "yesterday"], ["--by", ""]])
def test_bad_options_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as err:
        main(["usage", "--config", str(config), *args])
    assert err.value.code == 2
    assert "use" in capsys.readouterr().err
