"""Usage rows in one SQLite file (WAL), the embedded default."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ._sqlite import connect, transaction
from ._usage_sql import ROW, SQLITE, summary_rows
from .usage import SummaryField, UsageRecord, UsageSummaryRow

__all__ = ["SQLiteUsageStore"]


class SQLiteUsageStore:
    """:class:`~llmrelay.stores.usage.UsageStore` on SQLite; calls are serialised by a lock.

    The file may be shared with :class:`~llmrelay.stores.sqlite_keys.SQLiteKeyStore`;
    opening it brings its schema up to date (see :func:`llmrelay.stores._sqlite.connect`).
    Raises ``sqlite3.Error`` or ``OSError``.
    """

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection = connect(path)

    def write(self, records: Sequence[UsageRecord]) -> None:
        """Append rows in one transaction: one ``executemany`` a batch."""
        with self._lock, transaction(self._db) as cur:
            cur.executemany(SQLITE.insert, [ROW(r) for r in records])

    def rows(self) -> list[UsageRecord]:
        """Every row, oldest first (for tests and exports)."""
        with self._lock:
            out = [UsageRecord(*row) for row in self._db.execute(SQLITE.select_rows).fetchall()]
        for r in out:
            r.stream = bool(r.stream)
        return out

    def summary(
        self, group_by: Sequence[SummaryField], since: float | None = None
    ) -> list[UsageSummaryRow]:
        sql, params = SQLITE.summary(group_by, since)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return summary_rows(rows, len(group_by))

    def spend(self, scope: Literal["key", "team"], name: str, since: float) -> float:
        sql = SQLITE.spend(scope)
        with self._lock:
            (total,) = self._db.execute(sql, (name, since)).fetchone()
        return float(total or 0.0)

    def close(self) -> None:
        with self._lock:
            self._db.close()
