"""A store's connection to the SQLite file that follows the file at its path.

Deleting ``usage.db`` (and its ``-wal``/``-shm``) while the gateway runs does not stop
SQLite: the open connection goes on reading and writing the unlinked file, and everything
(virtual keys, usage) vanishes at the next restart. So before an operation, at most once
every :data:`CHECK_S` seconds, :meth:`SQLiteFile.connection` compares the path's device and
inode with those of the file it opened (one ``os.stat``, on the store's thread, never on
the event loop):

- **path missing**: the still-open database is copied back to the path (``VACUUM INTO`` a
  temporary file in the same folder, then ``os.link``, which never overwrites), and the
  store reopens it: nothing is lost. The copy takes time proportional to the database's
  size, under the store's lock.
- **another file at the path** (restored from a backup, say): the store opens that one
  (bringing its schema up to date); what the old file held stays in the old file.
- **the copy fails** (disk full, folder gone): the operation raises
  ``sqlite3.OperationalError``; the usage writer treats that as a store outage (it retries
  and spills, docs/faults.md), and a failing key refresh makes ``/ready`` 503 under
  ``governance.fail_closed``. The next operation tries again.

Each incident is logged once at ERROR (logger ``llmrelay.stores``) and kept in
:attr:`SQLiteFile.incident` (at most 300 characters, shared by the stores of one path) for
the console's Overview.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import time
from pathlib import Path

from ._sqlite import connect

__all__ = ["CHECK_S", "SQLiteFile"]

log = logging.getLogger("llmrelay.stores")

#: Seconds between two checks of the path (an operation in between uses the connection).
CHECK_S = 1.0
_INCIDENT_CHARS = 300
#: Per database path, the file this process last restored (the other store on the same
#: file, keys beside usage, follows it quietly) and the last incident: one entry a path.
_RESTORED: dict[Path, tuple[int, int] | None] = {}
_INCIDENTS: dict[Path, str] = {}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class SQLiteFile:
    """One connection to the SQLite file at ``path``, reopened when the file at the path
    changes (see the module). The caller serialises its use (the store's lock)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float | None = None) -> None:
        """Open ``path`` (see :func:`llmrelay.stores._sqlite.connect`); ``busy_timeout_s``
        replaces how long a write waits for another connection's lock."""
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._db = self._open()
        self._identity = _identity(self.path)
        self._checked = time.monotonic()
        #: Bumped at each reopen (a reader connection opened before must be reopened).
        self.generation = 0

    def _open(self) -> sqlite3.Connection:
        db = connect(self.path)
        if self._busy_timeout_s is not None:
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        return db

    def connection(self) -> sqlite3.Connection:
        """The connection to use now. Raises ``sqlite3.OperationalError`` when the file was
        deleted and could not be restored."""
        now = time.monotonic()
        if now - self._checked < CHECK_S:
            return self._db
        self._checked = now
        found = _identity(self.path)
        if found == self._identity:
            return self._db
        restored = _RESTORED.get(self.path)
        try:
            if restored is not None and found is not None and restored == found:
                pass  # the other store on this file restored it: follow
            elif found is None:
                size = self._restore()
                self._note(
                    f"{self.path.name} was deleted while the gateway ran at "
                    f"{time.strftime('%H:%M:%S', time.gmtime())} UTC; restored it from the "
                    f"still-open copy ({size:,} bytes), nothing lost"
                )
                _RESTORED[self.path] = _identity(self.path)
            else:
                self._note(
                    f"{self.path.name} was replaced by another file at "
                    f"{time.strftime('%H:%M:%S', time.gmtime())} UTC; using the new file"
                )
            self._reopen()
        except (OSError, sqlite3.Error) as err:
            what = "deleted while the gateway ran" if found is None else "replaced"
            self._note(
                f"{self.path.name} was {what} and could not be restored or opened"
                f" ({type(err).__name__}: {err}); writes fail until it is"
            )
            self._checked = 0.0  # try again at the next operation
            raise sqlite3.OperationalError(self.incident) from err
        return self._db

    def _restore(self) -> int:
        """Copy the open database to the path (never over a file that appeared there)."""
        tmp = self.path.with_name(f".{self.path.name}.restore-{secrets.token_hex(4)}")
        try:
            self._db.execute("VACUUM INTO ?", (str(tmp),))
            size = tmp.stat().st_size
            # Another store (or the operator) put a file there first: use that one.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def _reopen(self) -> None:
        fresh = self._open()
        self._db.close()
        self._db = fresh
        self._identity = _identity(self.path)
        self.generation += 1

    @property
    def incident(self) -> str | None:
        """What last happened to the file at this path in this process (None: nothing),
        for the console; at most 300 characters."""
        return _INCIDENTS.get(self.path)

    def _note(self, text: str) -> None:
        text = text[:_INCIDENT_CHARS]
        if text != _INCIDENTS.get(self.path):
            log.error("database file changed", extra={"path": str(self.path), "what": text})
        _INCIDENTS[self.path] = text

    def close(self) -> None:
        self._db.close()
