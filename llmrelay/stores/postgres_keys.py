"""Virtual keys in PostgreSQL, shared by every llmrelay instance."""

from __future__ import annotations

import builtins

import psycopg

from ._keys_sql import POSTGRES, MissingKey, duplicate_message
from ._pg import DEFAULT_TIMEOUT_S, Pool, open_pool
from .keys import KeyChanges, KeyEdit, KeySecret, VirtualKey

__all__ = ["PostgresKeyStore"]


class PostgresKeyStore:
    """:class:`~llmrelay.stores.keys.KeyStore` on PostgreSQL over a connection pool.

    Thread-safe (each call borrows its own connection). Writes serialise on the revision
    counter's row lock; :meth:`changed_since` reads one ``REPEATABLE READ`` snapshot. When
    the server is unreachable a call raises ``psycopg.OperationalError`` within about the
    pool's timeout (5 s by default; see :mod:`llmrelay.stores._pg`).
    """

    def __init__(self, pool: Pool, *, owns_pool: bool = False) -> None:
        self._pool = pool
        self._owns_pool = owns_pool

    @classmethod
    def open(cls, conninfo: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> PostgresKeyStore:
        """A store with a pool of its own, closed by :meth:`close`."""
        return cls(open_pool(conninfo, timeout_s=timeout_s), owns_pool=True)

    def create(self, key: VirtualKey, secret: KeySecret) -> None:
        try:
            with self._pool.connection() as conn, conn.transaction():
                POSTGRES.create(conn.cursor(), key, secret)
        except psycopg.errors.UniqueViolation as err:
            raise ValueError(duplicate_message(key.id, err)) from None

    def get(self, key_id: str) -> VirtualKey | None:
        with self._pool.connection() as conn:
            return POSTGRES.get(conn.cursor(), key_id)

    def list(self) -> builtins.list[VirtualKey]:
        with self._pool.connection() as conn:
            return POSTGRES.all(conn.cursor())

    def revoke(self, key_id: str, at: float) -> bool:
        try:
            with self._pool.connection() as conn, conn.transaction():
                POSTGRES.revoke(conn.cursor(), key_id, at)
        except MissingKey:
            return False
        return True

    def rotate(self, key_id: str, new_secret: KeySecret, old_valid_until: float) -> bool:
        try:
            with self._pool.connection() as conn, conn.transaction():
                POSTGRES.rotate(conn.cursor(), key_id, new_secret, old_valid_until)
        except MissingKey:
            return False
        except psycopg.errors.UniqueViolation as err:
            raise ValueError(duplicate_message(key_id, err)) from None
        return True

    def update(self, key_id: str, edit: KeyEdit) -> VirtualKey | None:
        try:
            with self._pool.connection() as conn, conn.transaction():
                return POSTGRES.update(conn.cursor(), key_id, edit)
        except MissingKey:
            return None

    def changed_since(self, revision: int) -> KeyChanges:
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return POSTGRES.changed_since(cur, revision)

    def close(self) -> None:
        if self._owns_pool:
            self._pool.close()
