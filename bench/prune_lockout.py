"""Does pruning a large ``request_bodies`` table lock out the usage writer? (issue 12:
"request-log pruning on a 10-million-row table does not lock out the usage writer").

Fills ``request_bodies`` with ``--rows`` old bodies (in the database's own bulk insert:
``generate_series`` on PostgreSQL, a recursive CTE on SQLite), then writes usage rows the
way the gateway's writer does (a batch of ``--batch-rows`` every ``--every-ms``, from a
thread) while :class:`~llmrelay.obs.retention.BodyPruner` runs until every old body is
gone. Prints the writer's batch latencies before and during the prune (p50, p99, max), the
prune's duration and rate, and checks that no usage row was lost.

    .venv/bin/python bench/prune_lockout.py --db sqlite:////tmp/prune.db --rows 10000000
    .venv/bin/python bench/prune_lockout.py \\
        --db postgresql://postgres@127.0.0.1:5432/test --rows 10000000

On PostgreSQL the run uses a schema of its own (``prune_bench``), dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path

from latencies import summary

from llmrelay.obs.retention import BodyPruner
from llmrelay.stores.database import open_stores, upgrade
from llmrelay.stores.usage import UsageRecord, UsageStore

_SCHEMA = "prune_bench"
_OLD_TS = 1_600_000_000.0  # 2020: far past any retention


def _fill_sql(postgres: bool, rows: int, body_bytes: int) -> str:
    body = f"'{'x' * body_bytes}'"
    if postgres:
        return (
            "INSERT INTO request_bodies (request_id, ts, request, response,"
            " request_truncated, response_truncated)"
            f" SELECT 'req_' || g, {_OLD_TS} + g * 0.001, {body}, {body}, false, false"
            f" FROM generate_series(1, {rows}) g"
        )
    return (
        f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows})"
        " INSERT INTO request_bodies (request_id, ts, request, response,"
        " request_truncated, response_truncated)"
        f" SELECT 'req_' || n, {_OLD_TS} + n * 0.001, {body}, {body}, 0, 0 FROM g"
    )


def _fill(url: str, rows: int, body_bytes: int) -> None:
    t = time.monotonic()
    chunk = 1_000_000
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for done in range(0, rows, chunk):
                conn.execute(_fill_sql(True, min(chunk, rows - done), body_bytes))
                print(f"  filled {done + min(chunk, rows - done):,} rows", flush=True)
            conn.execute("ANALYZE request_bodies")
    else:
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        for done in range(0, rows, chunk):
            db.execute(_fill_sql(False, min(chunk, rows - done), body_bytes))
            db.commit()
            print(f"  filled {done + min(chunk, rows - done):,} rows", flush=True)
        db.close()
    print(f"filled {rows:,} old bodies in {time.monotonic() - t:.0f} s", flush=True)


def _record(i: int) -> UsageRecord:
    return UsageRecord(
        ts=time.time(),
        request_id=f"req_bench_{i}",
        key_name="bench",
        model="local/echo",
        provider="local",
        provider_model="echo",
        endpoint="/v1/messages",
        stream=False,
        status=200,
        input_tokens=10,
        output_tokens=5,
    )


class _Writer(threading.Thread):
    """Writes a batch every ``every_s`` and keeps each batch's latency (ms) and phase."""

    def __init__(self, store: UsageStore, batch_rows: int, every_s: float) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.batch_rows = batch_rows
        self.every_s = every_s
        self.phase = "before"
        self.took: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.written = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            batch = [_record(self.written + i) for i in range(self.batch_rows)]
            t = time.perf_counter()
            self.store.write(batch)
            self.took[self.phase].append((time.perf_counter() - t) * 1000)
            self.written += len(batch)
            time.sleep(self.every_s)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True, help="sqlite:///PATH or a postgresql:// URL")
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--body-bytes", type=int, default=100, help="per request and response")
    p.add_argument("--batch-rows", type=int, default=50)
    p.add_argument("--every-ms", type=float, default=20.0)
    p.add_argument("--baseline-s", type=float, default=5.0)
    args = p.parse_args()
    url = args.db
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {_SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {_SCHEMA}")
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}options=-csearch_path%3D{_SCHEMA}"
    else:
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    try:
        upgrade(url)
        _fill(url, args.rows, args.body_bytes)
        stores = open_stores(url)
        writer = _Writer(stores.usage, args.batch_rows, args.every_ms / 1000)
        writer.start()
        time.sleep(args.baseline_s)
        writer.phase = "during"
        pruner = BodyPruner(stores.usage, retention_days=1, max_batches=10**9)
        t = time.monotonic()
        deleted = asyncio.run(pruner.prune_once())
        took_s = time.monotonic() - t
        writer.phase = "after"
        time.sleep(1)
        writer.stop.set()
        writer.join()
        rows = len([r for r in stores.usage.rows() if r.request_id.startswith("req_bench_")])
        stores.close()
        print(f"pruned {deleted:,} bodies in {took_s:.0f} s ({deleted / took_s:,.0f} rows/s)")
        for phase in ("before", "during", "after"):
            print(f"usage writer {phase:>6} the prune: {summary(writer.took[phase], 'batches')}")
        lost = writer.written - rows
        print(f"usage rows written {writer.written:,}, stored {rows:,}, lost {lost}")
    finally:
        if args.db.startswith("postgresql"):
            import psycopg

            with psycopg.connect(args.db, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {_SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
