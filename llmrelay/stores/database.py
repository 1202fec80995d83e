"""Opening the stores of one SQL database (SQLite or PostgreSQL; the URL forms and the
schema are :mod:`llmrelay.stores.schema`'s, re-exported here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .keys import KeyStore
from .schema import (
    SCHEMA_HEAD,
    DatabaseURL,
    SchemaError,
    check,
    current_and_head,
    parse_url,
    upgrade,
)
from .usage import UsageStore

__all__ = [
    "SCHEMA_HEAD",
    "DatabaseURL",
    "SchemaError",
    "Stores",
    "check",
    "current_and_head",
    "open_stores",
    "parse_url",
    "upgrade",
]


@dataclass(slots=True)
class Stores:
    """The stores of one database, and what closes them."""

    keys: KeyStore
    usage: UsageStore
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        self.keys.close()
        self.usage.close()
        for close in self._closers:
            close()


def open_stores(url: str, *, timeout_s: float | None = None) -> Stores:
    """Open the key and usage stores of ``url``; does not touch the schema (see
    :func:`upgrade` and :func:`check`), except that the SQLite stores bring an older file
    up to date themselves. PostgreSQL's two stores share one pool (1 to 4 connections);
    ``timeout_s`` bounds how long an operation waits for PostgreSQL (default 5 s; see
    :mod:`llmrelay.stores._pg`). Raises ``ValueError`` for a bad URL."""
    db = parse_url(url)
    if db.sqlite_path is not None:
        from .sqlite_keys import SQLiteKeyStore
        from .sqlite_usage import SQLiteUsageStore

        return Stores(SQLiteKeyStore(db.sqlite_path), SQLiteUsageStore(db.sqlite_path))
    from ._pg import DEFAULT_TIMEOUT_S, open_pool
    from .postgres_keys import PostgresKeyStore
    from .postgres_usage import PostgresUsageStore

    pool = open_pool(db.conninfo or "", timeout_s=timeout_s or DEFAULT_TIMEOUT_S)
    return Stores(PostgresKeyStore(pool), PostgresUsageStore(pool), [pool.close])
