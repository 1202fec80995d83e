"""Virtual keys in the SQLite file (WAL) the usage store may share."""

from __future__ import annotations

import builtins
import sqlite3
import threading
from pathlib import Path

from ._keys_sql import SQLITE, MissingKey, duplicate_message
from ._sqlite import transaction
from .keys import KeyChanges, KeyEdit, KeySecret, VirtualKey
from .sqlite_file import SQLiteFile

__all__ = ["SQLiteKeyStore"]


class SQLiteKeyStore:
    """:class:`~llmrelay.stores.keys.KeyStore` on SQLite; calls are serialised by a lock.

    Writes take the file's write lock up front (``BEGIN IMMEDIATE``), so two processes on
    one file queue rather than fail midway; reads of :meth:`changed_since` share one
    snapshot. Opening brings the schema up to date. Raises ``sqlite3.Error``.
    """

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._file = SQLiteFile(path)

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection (use under ``_lock``): follows the file at the path, see
        :mod:`llmrelay.stores.sqlite_file`."""
        return self._file.connection()

    def create(self, key: VirtualKey, secret: KeySecret) -> None:
        try:
            with self._lock, transaction(self._db, "BEGIN IMMEDIATE") as cur:
                SQLITE.create(cur, key, secret)
        except sqlite3.IntegrityError as err:
            raise ValueError(duplicate_message(key.id, err)) from None

    def get(self, key_id: str) -> VirtualKey | None:
        with self._lock:
            return SQLITE.get(self._db.cursor(), key_id)

    def list(self) -> builtins.list[VirtualKey]:
        with self._lock:
            return SQLITE.all(self._db.cursor())

    def revoke(self, key_id: str, at: float) -> bool:
        try:
            with self._lock, transaction(self._db, "BEGIN IMMEDIATE") as cur:
                SQLITE.revoke(cur, key_id, at)
        except MissingKey:
            return False
        return True

    def rotate(self, key_id: str, new_secret: KeySecret, old_valid_until: float) -> bool:
        try:
            with self._lock, transaction(self._db, "BEGIN IMMEDIATE") as cur:
                SQLITE.rotate(cur, key_id, new_secret, old_valid_until)
        except MissingKey:
            return False
        except sqlite3.IntegrityError as err:
            raise ValueError(duplicate_message(key_id, err)) from None
        return True

    def update(self, key_id: str, edit: KeyEdit) -> VirtualKey | None:
        try:
            with self._lock, transaction(self._db, "BEGIN IMMEDIATE") as cur:
                return SQLITE.update(cur, key_id, edit)
        except MissingKey:
            return None

    def changed_since(self, revision: int) -> KeyChanges:
        with self._lock, transaction(self._db) as cur:
            return SQLITE.changed_since(cur, revision)

    def close(self) -> None:
        with self._lock:
            self._file.close()
