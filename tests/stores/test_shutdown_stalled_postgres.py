"""``llmrelay serve`` exits on SIGTERM while PostgreSQL stalls (a connection that stays up,
acknowledged, but never answers: a blackholed proxy, a hung PgBouncer), with every usage
row in the spill file, replayed by the next run.

Before the fix a worker thread stayed in ``PostgresUsageStore.write`` (the pool's connection
check, a query with no timeout) and the event loop's close joined it without limit: the
process never exited.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import ALICE_KEY, base_config, start_gateway
from tests.governance.cluster import db_upgrade, pg_rows
from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip, with_host_port
from tests.tcp_proxy import TcpProxy

CALLS = 100
BODY = {"model": "mock/echo", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
# usage.shutdown_timeout_s (1 s) + the in-flight write's grace (10 s) + the default
# executor's bound (10 s), with room for a loaded machine.
EXIT_WITHIN_S = 45.0


def _call(url: str) -> int:
    req = urllib.request.Request(
        url + "/v1/messages",
        data=json.dumps(BODY).encode(),
        headers={"x-api-key": ALICE_KEY, "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return int(r.status)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {what}"
        time.sleep(0.2)


def _spilled(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in sorted(path.parent.glob(path.name + "*")):
        if p.suffix == ".lock":
            continue
        rows += [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return rows


def test_sigterm_exits_while_postgres_stalls_and_rows_are_replayed(tmp_path: Path) -> None:
    base = postgres_url_or_skip()
    target = urlsplit(base)
    spill = tmp_path / "usage.spill.jsonl"
    with (
        fresh_pg_schema(base) as db,
        TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
    ):

        def config(database: str) -> dict[str, Any]:
            return base_config(
                tmp_path,
                {"mock": {"type": "mock", "models": {"echo": "echo"}}},
                database=database,
                usage={
                    "path": str(tmp_path / "usage.db"),
                    "flush_interval_s": 0.05,
                    "queue_size": 50,
                    "spill_path": str(spill),
                    "shutdown_timeout_s": 1,
                },
            )

        db_upgrade(tmp_path, config(db))
        gw = start_gateway(tmp_path, config(with_host_port(db, "127.0.0.1", proxy.port)))
        try:
            assert _call(gw.url) == 200
            _wait_for(lambda: len(pg_rows(db)) == 1, 10, "the first row stored")

            proxy.blackhole()
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: _call(gw.url), range(CALLS - 1)))
            assert statuses == [200] * (CALLS - 1)
            time.sleep(1.0)  # the writer is now stuck on the stalled connection

            start = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            try:
                code = gw.proc.wait(EXIT_WITHIN_S)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"still running {EXIT_WITHIN_S} s after SIGTERM:\n{gw.log()[-3000:]}"
                ) from None
            took = time.monotonic() - start
            log = gw.log()
            assert code in (0, 1), (code, log[-3000:])
            assert took < EXIT_WITHIN_S, took
            # The one stored before the stall is not spilled; the 99 others are.
            assert len(_spilled(spill)) == CALLS - 1, log[-3000:]
        finally:
            gw.stop()

        # Back on the database directly: the next run replays the spill file.
        gw = start_gateway(tmp_path, config(db))
        try:
            _wait_for(lambda: len(pg_rows(db)) == CALLS, 30, "every row stored")
            rows = pg_rows(db)
            assert len({r["request_id"] for r in rows}) == CALLS
        finally:
            gw.stop()
