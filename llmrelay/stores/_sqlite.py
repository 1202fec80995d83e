"""Opening the SQLite file the stores share: WAL, ``synchronous=NORMAL``, schema at head.

WAL lets readers (summaries, key refreshes) run beside the usage writer; NORMAL syncs at
checkpoints rather than every commit, which in WAL mode keeps the database consistent
after a crash and may lose only the last commits on power loss (SQLite docs, "PRAGMA
synchronous"). A write waits up to ``BUSY_TIMEOUT_S`` for another connection's lock, then
raises ``sqlite3.OperationalError`` ("database is locked").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BUSY_TIMEOUT_S", "connect", "transaction"]

#: Seconds a statement waits for another connection's write lock.
BUSY_TIMEOUT_S = 5.0


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (the stores BEGIN themselves), usable from any thread
    (the caller serialises its use). The embedded default must just work, so a file without
    the current schema (new, or written by an older release) is upgraded here; a file from
    a newer release raises :class:`~llmrelay.stores.schema.SchemaError`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
    )
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        _ensure_schema(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _ensure_schema(db: sqlite3.Connection, path: Path) -> None:
    from .schema import SCHEMA_HEAD, upgrade

    try:
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table: new, or from before migrations
        row = None
    if row is None or row[0] != SCHEMA_HEAD:
        upgrade(f"sqlite:///{path}")


@contextmanager
def transaction(db: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[sqlite3.Cursor]:
    """A cursor inside ``begin`` ... COMMIT, rolled back if the block raises."""
    cur = db.cursor()
    cur.execute(begin)
    try:
        yield cur
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")
