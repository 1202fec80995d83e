"""The console's queries on 1 million usage rows (90 days, 40 keys, 5 teams, 3 models):
migration 0004 fills the hourly rollup from them, the rollup agrees with the rows, and each
query the console runs reads the rollup (overview) or walks an index (request log, budget
spend): EXPLAIN says so, on SQLite and on PostgreSQL. Each query's time is recorded in the
test's output (``-s`` prints it) and in docs/benchmarks.md; no test asserts a time.

Rows are generated inside the database (a recursive CTE on SQLite, ``generate_series`` on
PostgreSQL): a few seconds for a million.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from llmrelay.stores._rollup_sql import POSTGRES_ROLLUP, SQLITE_ROLLUP, RollupSQL
from llmrelay.stores._usage_sql import POSTGRES, SQLITE, UsageSQL
from llmrelay.stores.schema import upgrade
from llmrelay.stores.usage import RequestFilter
from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip

ROWS = 1_000_000
DAYS = 90
NOW = 1_790_000_000  # a whole hour (Unix seconds)
START = NOW - DAYS * 86400
STEP = DAYS * 86400 / ROWS

# One expression per column, over the generator's ``i`` (0 .. ROWS-1).
_COLUMNS = {
    "ts": f"{START} + i * {STEP}",
    "request_id": "'req_' || i",
    "key_name": "'key-' || (i / 7 % 40)",
    "key_id": "'vk_' || (i / 7 % 40)",
    "team": "'team-' || (i / 7 % 5)",
    "model": "'model-' || (i % 3)",
    "provider": "'acct-' || (i % 3)",
    "provider_model": "'pm-' || (i % 3)",
    "endpoint": "'messages'",
    "status": "CASE WHEN i % 50 = 0 THEN 529 ELSE 200 END",
    "input_tokens": "100 + i % 900",
    "output_tokens": "20 + i % 300",
    "cache_creation_input_tokens": "0",
    "cache_read_input_tokens": "i % 4 * 100",
    "latency_s": "0.5 + (i % 10) * 0.1",
    "cost_usd": "(i % 100) * 0.0001",
}


def _generate_sql(pg: bool) -> str:
    names = ", ".join(["stream", *_COLUMNS])
    values = ", ".join(["FALSE" if pg else "0", *_COLUMNS.values()])
    if pg:
        return f"INSERT INTO usage ({names}) SELECT {values} FROM generate_series(0, {ROWS - 1}) i"
    return (
        f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS - 1})"
        f" INSERT INTO usage ({names}) SELECT {values} FROM n"
    )


def console_queries(usage: UsageSQL, rollup: RollupSQL) -> dict[str, tuple[str, list[Any]]]:
    """Every query a console page runs, as the stores run them."""
    day, hour = 86400, 3600
    out = {
        "overview series 24h by hour": rollup.series(hour, NOW - day, NOW),
        "overview series 7d by day": rollup.series(day, NOW - 7 * day, NOW),
        "overview series 30d by day": rollup.series(day, NOW - 30 * day, NOW),
    }
    for by in ("key", "team", "model", "provider"):
        out[f"overview breakdown 30d by {by}"] = rollup.breakdown(by, NOW - 30 * day, NOW)
    filters = {
        "requests newest page": RequestFilter(),
        "requests by key": RequestFilter(key="key-7"),
        "requests by model": RequestFilter(model="model-1"),
        "requests 5xx": RequestFilter(status_min=500, status_max=599),
        "requests by request id prefix": RequestFilter(request_id_prefix="req_12345"),
        "requests since 1h": RequestFilter(since=NOW - hour),
    }
    for name, where in filters.items():
        out[name] = usage.requests(where)
    out["request by id"] = (usage.request(), ["req_424242"])
    out["budget spend of a key this month"] = (usage.spend("key"), ["vk_7", NOW - 30 * day])
    out["budget spend of a team this month"] = (usage.spend("team"), ["team-3", NOW - 30 * day])
    return out


def _timed(run: Callable[[], Sequence[Any]]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def _report(db: str, timings: dict[str, float], plans: dict[str, str]) -> None:
    print(f"\n{db}: console queries on {ROWS:,} usage rows (ms, best of 3)")
    for name, ms in timings.items():
        print(f"  {ms:8.1f}  {name}  [{plans[name]}]")


def _check_plan(name: str, plan: str, *, pg: bool) -> None:
    if name.startswith("overview"):
        # The overview reads the rollup only, by its primary key's hour range or whole.
        assert "usage_hourly" in plan and "usage " not in plan.replace("usage_hourly", ""), (
            name,
            plan,
        )
        return
    if pg:
        assert "Index" in plan and "Seq Scan on usage" not in plan, (name, plan)
    else:
        if name in ("requests newest page", "requests since 1h"):
            # Walks the rowid backwards (ids grow with ts) and stops after a page: nothing
            # sorts the table.
            assert "SCAN usage" in plan and "TEMP B-TREE" not in plan, (name, plan)
        else:
            # An index narrows the rows (a status range then sorts the rows it found).
            assert "SEARCH usage USING" in plan and "INDEX" in plan, (name, plan)


def test_console_queries_on_a_million_sqlite_rows_use_the_rollup_or_an_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.db"
    url = f"sqlite:///{path}"
    upgrade(url, "0003")
    db = sqlite3.connect(path)
    with db:
        db.execute(_generate_sql(pg=False))
    db.close()
    upgrade(url)  # 0004 fills the rollup from the million rows
    db = sqlite3.connect(path)
    try:
        (n, cost, tokens) = db.execute(
            "SELECT COUNT(*), SUM(cost_usd), SUM(input_tokens) FROM usage"
        ).fetchone()
        (rn, rcost, rtokens, groups) = db.execute(
            "SELECT SUM(requests), SUM(cost_usd), SUM(input_tokens), COUNT(*) FROM usage_hourly"
        ).fetchone()
        assert (n, tokens) == (rn, rtokens) == (ROWS, tokens) and abs(cost - rcost) < 1e-6
        assert groups < ROWS / 3  # the rollup is much smaller than the rows
        timings, plans = {}, {}
        for name, (sql, params) in console_queries(SQLITE, SQLITE_ROLLUP).items():
            plan = " | ".join(
                row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            )
            plans[name] = plan
            _check_plan(name, plan, pg=False)
            timings[name] = min(
                _timed(lambda s=sql, p=params: db.execute(s, p).fetchall()) for _ in range(3)
            )
        _report("SQLite", timings, plans)
    finally:
        db.close()


def test_console_queries_on_a_million_postgres_rows_use_the_rollup_or_an_index() -> None:
    base = postgres_url_or_skip()
    with fresh_pg_schema(base) as url:
        upgrade(url, "0003")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_generate_sql(pg=True))
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE usage")
            conn.execute("ANALYZE usage_hourly")
            n, rn = conn.execute(
                "SELECT (SELECT COUNT(*) FROM usage), (SELECT SUM(requests) FROM usage_hourly)"
            ).fetchone()
            assert n == rn == ROWS
            timings, plans = {}, {}
            for name, (sql, params) in console_queries(POSTGRES, POSTGRES_ROLLUP).items():
                rows = conn.execute("EXPLAIN " + sql, params).fetchall()
                plan = " | ".join(r[0].strip() for r in rows)
                plans[name] = plan[:160]
                _check_plan(name, plan, pg=True)
                timings[name] = min(
                    _timed(lambda s=sql, p=params: conn.execute(s, p).fetchall()) for _ in range(3)
                )
            _report("PostgreSQL", timings, plans)
