"""Usage rows in one SQLite file (WAL), the embedded default."""

from __future__ import annotations

import operator
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from .usage import UsageRecord, UsageSummaryRow

__all__ = ["SQLiteUsageStore"]

_COLUMNS = [f.name for f in fields(UsageRecord)]
# attrgetter, not dataclasses.astuple: astuple deep-copies every field (13.7 us a row
# against 0.3 us), and the writer thread holds the GIL while it does.
_ROW = operator.attrgetter(*_COLUMNS)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    request_id TEXT NOT NULL,
    key_name TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_creation_input_tokens INTEGER NOT NULL,
    cache_read_input_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    ttft_s REAL,
    error_type TEXT,
    upstream_request_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    attempt_log TEXT
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
"""
_ADDED_COLUMNS = (("attempts", "INTEGER NOT NULL DEFAULT 1"), ("attempt_log", "TEXT"))
_INSERT = f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


class SQLiteUsageStore:
    """:class:`~llmrelay.stores.usage.UsageStore` on SQLite; calls are serialised by a lock."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Columns added since a file was created (a stop-gap until schema migrations)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(usage)")}
        for name, decl in _ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE usage ADD COLUMN {name} {decl}")

    def write(self, records: Sequence[UsageRecord]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_INSERT, [_ROW(r) for r in records])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rows(self) -> list[UsageRecord]:
        """Every row, oldest first (for tests and exports)."""
        with self._lock:
            cur = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM usage ORDER BY id")
            out = [UsageRecord(*row) for row in cur.fetchall()]
        for r in out:
            r.stream = bool(r.stream)
        return out

    def summary(self) -> list[UsageSummaryRow]:
        with self._lock:
            cur = self._db.execute(
                "SELECT key_name, model, COUNT(*), SUM(status >= 400), SUM(input_tokens),"
                " SUM(output_tokens), SUM(cache_creation_input_tokens),"
                " SUM(cache_read_input_tokens), AVG(latency_s)"
                " FROM usage GROUP BY key_name, model ORDER BY key_name, model"
            )
            return [UsageSummaryRow(*row) for row in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
