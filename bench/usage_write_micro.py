"""CPU of the usage writer a row: :meth:`SQLiteUsageStore.write` in batches (the writer
thread's work: the rows, the hourly rollup, the indexes, the commit), and the recorder's
own work around it (``record()`` on the event loop, the writer task's batching).

Every call writes one row, so µs a row is µs of CPU a call. Rows are shaped as the gateway
writes them (a mix of plain calls, streams, client hang-ups and upstream errors, 40 keys,
3 models, user agents and trace ids), with request ids of the gateway's form (time first).
A fresh file by default; ``--prefill N`` first fills it with N rows over 90 days (in the
database, like ``bench/console_pages.py``), the table a busy gateway writes into.

    .venv/bin/python bench/usage_write_micro.py
    .venv/bin/python bench/usage_write_micro.py --prefill 1000000

CPU time is ``time.process_time()`` (this process, user and system: the commit's writes
included), so other work on the machine changes it little; runs still vary by ~10%.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from llmrelay.obs.usage import UsageRecorder
from llmrelay.stores.schema import upgrade
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import UsageRecord

MODELS = ("anthropic/claude-3-5", "openai/gpt-4o", "anthropic/claude-haiku")


def request_id(ms: int) -> str:
    """The gateway's form (``pipeline.run.new_request_id``)."""
    return f"req_{ms:012x}{random.getrandbits(48):012x}"


def record(i: int) -> UsageRecord:
    """A row as the gateway records it; one in 10 a stream, one in 50 a hang-up, one in 50
    an upstream error."""
    now = time.time()
    model = MODELS[i % 3]
    key = i // 7 % 40
    r = UsageRecord(
        ts=now,
        request_id=request_id(int(now * 1000)),
        key_name=f"key-{key}",
        model=model,
        provider=model.split("/")[0],
        provider_model=model.split("/")[1] + "-20241022",
        endpoint="messages",
        stream=i % 10 == 0,
        status=200,
        input_tokens=100 + i % 900,
        output_tokens=20 + i % 300,
        latency_s=0.4 + i % 10 * 0.1,
        upstream_request_id=f"msg_{random.getrandbits(64):016x}",
        key_id=f"vk_{key:08x}",
        team=f"team-{key % 5}" if key % 2 else None,
        cost_usd=0.0036,
        surface="anthropic",
        routed_model=model,
        user_agent="Anthropic/Python 0.40.0",
        trace_id=f"{random.getrandbits(128):032x}" if i % 4 == 0 else None,
        overhead_ms=0.11,
        upstream_ms=380.0,
    )
    if r.stream:
        r.ttft_s = 0.2
    if i % 50 == 7:
        r.status, r.error_type, r.upstream_request_id = 499, "client_disconnected", None
        r.output_tokens, r.cost_usd = 0, 0.0
    elif i % 50 == 31:
        r.status, r.error_type = 529, "overloaded_error"
        r.error_message, r.input_tokens, r.output_tokens, r.cost_usd = "Overloaded", 0, 0, 0.0
    return r


def prefill(path: Path, rows: int, days: int = 90) -> None:
    """``rows`` usage rows over ``days`` days ending now, then the rollup (migration 0004)."""
    url = f"sqlite:///{path}"
    upgrade(url, "0003")
    start_ms = int((time.time() - days * 86400) * 1000)
    step_ms = days * 86400 * 1000 // rows
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO usage (ts, request_id, key_name, key_id, team, model, provider,"
            " provider_model, endpoint, stream, status, input_tokens, output_tokens,"
            " cache_creation_input_tokens, cache_read_input_tokens, latency_s, cost_usd,"
            " surface, routed_model, user_agent, overhead_ms, upstream_ms)"
            " SELECT (? + i * ?) / 1000.0,"
            " printf('req_%012x%012x', ? + i * ?, abs(random()) % 281474976710656),"
            " 'key-' || (i / 7 % 40), printf('vk_%08x', i / 7 % 40),"
            " CASE WHEN i / 7 % 2 THEN 'team-' || (i / 7 % 40 % 5) END,"
            " 'model-' || (i % 3), 'acct-' || (i % 3), 'pm', 'messages', i % 10 = 0,"
            " CASE WHEN i % 50 = 0 THEN 529 ELSE 200 END, 100 + i % 900, 20 + i % 300, 0,"
            " i % 4 * 100, 0.5 + (i % 10) * 0.1, (i % 100) * 0.0001, 'anthropic',"
            " 'model-' || (i % 3), 'Anthropic/Python 0.40.0', 0.11, 380.0 FROM n",
            (rows - 1, start_ms, step_ms, start_ms, step_ms),
        )
    db.close()
    upgrade(url)


def store_cpu(store: SQLiteUsageStore, rows: int, batch: int) -> float:
    """CPU µs a row of ``store.write`` over ``rows`` new rows in batches of ``batch``."""
    records = [record(i) for i in range(rows)]
    began = time.process_time()
    for i in range(0, rows, batch):
        store.write(records[i : i + batch])
    return (time.process_time() - began) / rows * 1e6


class _Discard:
    """A store that keeps nothing: the recorder's own cost alone."""

    def write(self, records: object) -> None:
        pass


async def recorder_cpu(rows: int, batch: int) -> float:
    """CPU µs a row of ``record()`` and the writer task around a store that keeps nothing."""
    records = [record(i) for i in range(rows)]
    recorder = UsageRecorder(
        _Discard(),  # type: ignore[arg-type]
        queue_size=rows,
        batch_size=batch,
        flush_interval_s=0.05,
    )
    recorder.start()
    began = time.process_time()
    for i in range(0, rows, batch):
        for r in records[i : i + batch]:
            recorder.record(r)
        await asyncio.sleep(0)
    await recorder.aclose()  # writes what is queued, then stops
    assert recorder.written == rows
    return (time.process_time() - began) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000, help="rows written a run")
    parser.add_argument("--batch", type=int, default=100, help="the usage.batch_size default")
    parser.add_argument("--prefill", type=int, default=0, help="rows in the file before")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="usage-write-")) / "usage.db"
    if args.prefill:
        began = time.perf_counter()
        prefill(path, args.prefill)
        print(f"prefilled {args.prefill:,} rows in {time.perf_counter() - began:.1f} s")
    store = SQLiteUsageStore(path)
    took = [store_cpu(store, args.rows, args.batch) for _ in range(args.runs)]
    store.close()
    runs = ", ".join(f"{t:.1f}" for t in took)
    print(
        f"store.write: {statistics.median(took):.1f} µs a row (median of {args.runs} runs of"
        f" {args.rows:,} rows in batches of {args.batch}; runs {runs})"
    )
    took = [asyncio.run(recorder_cpu(args.rows, args.batch)) for _ in range(args.runs)]
    print(f"recorder (record() and the writer task): {statistics.median(took):.1f} µs a row")


if __name__ == "__main__":
    main()
