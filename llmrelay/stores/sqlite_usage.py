"""Usage rows in one SQLite file (WAL), the embedded default."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from ._rollup_sql import SQLITE_ROLLUP, breakdown_rows, rollup_rows
from ._rollup_sql import series_points as _points
from ._sqlite import BUSY_TIMEOUT_S, transaction
from ._usage_sql import SQLITE, SQLiteInserts, bodies, bodies_rows, logged, page, summary_rows
from .sqlite_file import SQLiteFile
from .usage import (
    Breakdown,
    LoggedRequest,
    RejectedRowsError,
    RequestBodies,
    RequestFilter,
    RequestPage,
    SeriesPoint,
    SummaryField,
    UsageRecord,
    UsageSummaryRow,
)

__all__ = ["SQLiteUsageStore"]

# Errors raised by what a row holds, not by the database's state: a string sqlite3 cannot
# encode (UnicodeEncodeError, a ValueError), an int past 64 bits (OverflowError), NULL in a
# NOT NULL column (NaN binds as NULL: IntegrityError), a value past SQLite's size limit
# (DataError), a type it cannot bind. sqlite3.OperationalError ("database is locked",
# "disk I/O error", "no such table") is the database's state: the same rows may go in later.
_REFUSED = (
    ValueError,
    TypeError,
    OverflowError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
)


def _refused(err: Exception) -> bool:
    if isinstance(err, _REFUSED):
        return True
    # ProgrammingError also says "Cannot operate on a closed database", which is no row's fault.
    return isinstance(err, sqlite3.ProgrammingError) and str(err).startswith("Error binding")


class SQLiteUsageStore:
    """:class:`~llmrelay.stores.usage.UsageStore` on SQLite; calls are serialised by a lock.

    The file may be shared with :class:`~llmrelay.stores.sqlite_keys.SQLiteKeyStore`;
    opening it brings its schema up to date (see :func:`llmrelay.stores._sqlite.connect`).
    Raises ``sqlite3.Error`` or ``OSError``; :meth:`write` raises
    :class:`~llmrelay.stores.usage.RejectedRowsError` for rows SQLite cannot take.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float | None = None) -> None:
        """Open ``path``; ``busy_timeout_s`` replaces how long a write waits for another
        connection's lock (default :data:`~llmrelay.stores._sqlite.BUSY_TIMEOUT_S`)."""
        self._lock = threading.Lock()
        self._file = SQLiteFile(path, busy_timeout_s=busy_timeout_s)
        self._path = Path(path)
        self._inserts = SQLiteInserts()  # used under _lock
        # The console's reads (rollup, last use) go through a second, read-only connection,
        # opened on first use: WAL lets it read beside the writer, so a page never holds
        # the lock the usage writer and the budget seeding take.
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._reader_generation = 0
        self._closed = False

    @property
    def _db(self) -> sqlite3.Connection:
        """The writer connection (use under ``_lock``): follows the file at the path, see
        :mod:`llmrelay.stores.sqlite_file`."""
        return self._file.connection()

    @property
    def file_incident(self) -> str | None:
        """What happened to the database file while the gateway ran (deleted and
        restored, replaced, or not restorable), or None."""
        return self._file.incident

    def write(self, records: Sequence[UsageRecord]) -> None:
        """Append rows (and their rendered bodies) in one transaction: an ``executemany``
        per run of rows of one shape (:class:`~llmrelay.stores._usage_sql.SQLiteInserts`).
        Raises ``RejectedRowsError`` (nothing written) when a row's content is
        refused."""
        try:
            with self._lock, transaction(self._db) as cur:
                for sql, rows in self._inserts.runs(records):
                    cur.executemany(sql, rows)
                cur.executemany(SQLITE_ROLLUP.upsert, rollup_rows(records))
                captured = bodies_rows(records)
                if captured:
                    cur.executemany(SQLITE.insert_bodies, captured)
        except Exception as err:
            if _refused(err):
                raise RejectedRowsError(f"{type(err).__name__}: {err}") from err
            raise

    def rows(self) -> list[UsageRecord]:
        """Every row, oldest first (for tests and exports)."""
        with self._lock:
            out = [UsageRecord(*row) for row in self._db.execute(SQLITE.select_rows).fetchall()]
        for r in out:
            r.stream = bool(r.stream)
        return out

    def requests(self, where: RequestFilter) -> RequestPage:
        sql, params = SQLITE.requests(where)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return page(rows, where)

    def request(self, request_id: str) -> tuple[LoggedRequest, RequestBodies | None] | None:
        with self._lock:
            row = self._db.execute(SQLITE.request(), (request_id,)).fetchone()
            if row is None:
                return None
            found = logged(row)
            kept = None
            if found.has_bodies:
                kept = bodies(self._db.execute(SQLITE.bodies_of, (request_id,)).fetchone())
        return found, kept

    def prune_bodies(self, before: float, limit: int) -> int:
        with self._lock, transaction(self._db) as cur:
            cur.execute(SQLITE.prune, (before, limit))
            return int(cur.rowcount)

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

    def _read(self, sql: str, params: Sequence[object]) -> list[Any]:
        """Rows of a console read, on the read-only connection."""
        with self._read_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            if self._reader is not None and self._reader_generation != self._file.generation:
                self._reader.close()  # opened on a file that is no longer at the path
                self._reader = None
            if self._reader is None:
                self._reader_generation = self._file.generation
                # mode=rw: never create an empty file where a deleted database was (the
                # writer's connection restores it; until then this read fails).
                reader = sqlite3.connect(
                    f"file:{quote(str(self._path.absolute()))}?mode=rw",
                    uri=True,
                    check_same_thread=False,
                    isolation_level=None,
                    timeout=BUSY_TIMEOUT_S,
                )
                reader.execute("PRAGMA query_only = ON")
                self._reader = reader
            return self._reader.execute(sql, params).fetchall()

    def series(self, bucket_s: int, since: int, until: int) -> list[SeriesPoint]:
        return _points(self._read(*SQLITE_ROLLUP.series(bucket_s, since, until)))

    def breakdown(self, by: str, since: int, until: int) -> list[Breakdown]:
        return breakdown_rows(self._read(*SQLITE_ROLLUP.breakdown(by, since, until)))

    def last_used(self, key_id: str) -> float | None:
        ((ts,),) = self._read(SQLITE.last_used, (key_id,))
        return None if ts is None else float(ts)

    def close(self) -> None:
        with self._read_lock:
            self._closed = True
            if self._reader is not None:
                self._reader.close()
        with self._lock:
            self._file.close()
