"""The hourly rollup on SQLite and PostgreSQL: each written batch adds to it in the same
transaction, the series and breakdown read it, and a refused batch adds nothing."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from llmrelay.stores._rollup_sql import SQLITE_ROLLUP, rollup_rows
from llmrelay.stores.database import Stores
from llmrelay.stores.usage import RejectedRowsError, UsageRecord

HOUR = 1_790_000_000 // 3600 * 3600


def row(
    ts: float,
    key: str,
    model: str,
    status: int = 200,
    cost: float | None = 0.5,
    team: str | None = "red",
) -> UsageRecord:
    return UsageRecord(
        ts=ts,
        request_id=f"req_{ts}_{key}",
        key_name=key,
        model=model,
        provider="acct",
        provider_model="pm",
        endpoint="messages",
        stream=False,
        status=status,
        input_tokens=10,
        output_tokens=5,
        latency_s=0.2,
        cost_usd=cost,
        team=team,
    )


def test_batches_add_to_the_rollup_and_series_and_breakdown_read_it(stores: Stores) -> None:
    usage = stores.usage
    usage.write([row(HOUR + 10, "a", "m1"), row(HOUR + 20, "a", "m1", status=529, cost=None)])
    usage.write([row(HOUR + 30, "b", "m2", team=None), row(HOUR + 3600 + 5, "a", "m1")])
    series = usage.series(3600, HOUR - 3600, HOUR + 7200)
    assert [(p.start, p.totals.requests, p.totals.errors) for p in series] == [
        (HOUR, 3, 1),
        (HOUR + 3600, 1, 0),
    ]
    assert math.isclose(series[0].totals.cost_usd, 1.0)
    assert series[0].totals.input_tokens == 30 and math.isclose(series[0].totals.latency_s, 0.6)
    day = usage.series(86400, HOUR - 86400, HOUR + 86400)
    assert sum(p.totals.requests for p in day) == 4
    by_key = usage.breakdown("key", HOUR, HOUR + 7200)
    assert [(b.value, b.totals.requests) for b in by_key] == [("a", 3), ("b", 1)]
    by_team = usage.breakdown("team", HOUR, HOUR + 7200)
    assert [(b.value, b.totals.requests) for b in by_team] == [("red", 3), ("", 1)]
    assert usage.series(3600, HOUR + 7200, HOUR + 9000) == []
    with pytest.raises(ValueError, match="cannot break usage down by 'colour'"):
        usage.breakdown("colour", HOUR, HOUR + 1)


def test_a_refused_batch_adds_nothing_to_the_rollup(stores: Stores) -> None:
    usage = stores.usage
    with pytest.raises(RejectedRowsError):
        usage.write([row(HOUR, "a", "m1"), row(float("nan"), "a", "m1")])
    assert usage.series(3600, HOUR - 3600, HOUR + 3600) == []
    assert usage.rows() == []


def test_rollup_rows_group_a_batch_by_hour_key_team_model_provider() -> None:
    rows = rollup_rows(
        [row(HOUR + 1, "a", "m"), row(HOUR + 2, "a", "m"), row(HOUR + 3601, "a", "m")]
    )
    assert [(r[0], r[5]) for r in rows] == [(HOUR, 2), (HOUR + 3600, 1)]


def test_a_series_bucket_is_a_whole_number_of_hours() -> None:
    with pytest.raises(ValueError, match="multiple of 3600"):
        SQLITE_ROLLUP.series(1800, 0, 3600)


def test_last_used_is_the_newest_call_of_a_key_id(stores: Stores) -> None:
    usage = stores.usage
    assert usage.last_used("vk_a") is None
    first, second = row(HOUR + 1, "a", "m"), row(HOUR + 99, "a", "m")
    first.key_id = second.key_id = "vk_a"
    usage.write([second, first])
    assert usage.last_used("vk_a") == HOUR + 99
    assert usage.last_used("vk_b") is None


def test_sqlite_console_reads_do_not_wait_for_the_writers_lock(tmp_path: Path) -> None:
    from llmrelay.stores.sqlite_usage import SQLiteUsageStore

    store = SQLiteUsageStore(tmp_path / "usage.db")
    try:
        r = row(HOUR + 1, "a", "m")
        r.key_id = "vk_a"
        store.write([r])
        with store._lock:  # the usage writer (or budget seeding) in the middle of a call
            assert [p.totals.requests for p in store.series(3600, HOUR, HOUR + 3600)] == [1]
            assert [b.value for b in store.breakdown("model", HOUR, HOUR + 3600)] == ["m"]
            assert store.last_used("vk_a") == HOUR + 1
    finally:
        store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.series(3600, HOUR, HOUR + 3600)


def test_rollup_rows_come_in_group_order_so_concurrent_writers_never_deadlock() -> None:
    rows = rollup_rows([row(HOUR + 3601, "b", "m"), row(HOUR, "b", "m"), row(HOUR, "a", "z")])
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (HOUR, "a", "z"),
        (HOUR, "b", "m"),
        (HOUR + 3600, "b", "m"),
    ]
