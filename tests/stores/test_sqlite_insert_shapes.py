"""SQLite's usage insert writes NULL and the booleans as literals (one statement per shape
of a row, :class:`~llmrelay.stores._usage_sql.SQLiteInserts`): the stored rows are the
ones binding every value stores, type for type, in the order written."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

from llmrelay.stores._usage_sql import COLUMNS, SQLiteInserts, row_values
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import UsageRecord

_OPTIONAL = {
    "ttft_s": 0.25,
    "error_type": "overloaded_error",
    "upstream_request_id": "req_up",
    "key_id": "vk_1",
    "team": "platform",
    "cost_usd": 0.5,
    "surface": "anthropic",
    "routed_model": "a/m",
    "error_message": "Overloaded",
    "user_agent": "curl/8",
    "trace_id": "0" * 32,
    "overhead_ms": 0.1,
    "upstream_ms": 9.5,
    "billing": "subscription",
}
_ATTEMPTS = [{"target": "a/m", "status": 200, "error_type": None, "latency_s": 0.5}]


def _records() -> list[UsageRecord]:
    """Every flag and attempt-log state, and each optional column set and not, mixed."""
    out = []
    states = itertools.product(
        (True, False, 1, 0),  # stream: bools, and ints a caller may pass
        (None, True, False, 1),  # tokens_known
        (None, '[{"target": "a/m"}]', _ATTEMPTS),  # attempt_log
    )
    for i, (stream, known, log) in enumerate(states):
        optional = {
            name: value if (i + j) % 3 else None
            for j, (name, value) in enumerate(_OPTIONAL.items())
        }
        out.append(
            UsageRecord(
                ts=1_741_000_000.0 + i,
                request_id=f"req_{i}",
                key_name="k",
                model="a/m",
                provider="a",
                provider_model="m",
                endpoint="messages",
                stream=stream,  # type: ignore[arg-type]
                status=200 + i,
                input_tokens=i,
                tokens_known=known,  # type: ignore[arg-type]
                attempt_log=log,  # type: ignore[arg-type]
                **optional,  # type: ignore[arg-type]
            )
        )
    return out


def _stored(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    typed = ", ".join(f"{c}, typeof({c})" for c in COLUMNS)
    return db.execute(f"SELECT id, {typed} FROM usage ORDER BY id").fetchall()


def test_rows_are_stored_as_binding_every_value_stores_them(tmp_path: Path) -> None:
    records = _records()
    store = SQLiteUsageStore(tmp_path / "shapes.db")
    store.write(records[:50])
    store.write(records[50:])
    bound = SQLiteUsageStore(tmp_path / "bound.db")
    marks = ", ".join("?" for _ in COLUMNS)
    with bound._lock:
        bound._db.executemany(
            f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({marks})",
            [row_values(r) for r in records],
        )
    with store._lock, bound._lock:
        assert _stored(store._db) == _stored(bound._db)
    assert [r.request_id for r in store.rows()] == [r.request_id for r in records]
    store.close()
    bound.close()


def test_consecutive_rows_of_one_shape_share_a_statement() -> None:
    inserts = SQLiteInserts()
    a, b = _records()[:2]
    runs = inserts.runs([a, a, b, b, a])
    assert [len(rows) for _, rows in runs] == [2, 2, 1]
    assert runs[0][0] == runs[2][0] != runs[1][0]
    assert "NULL" in runs[0][0] and "?" in runs[0][0]
