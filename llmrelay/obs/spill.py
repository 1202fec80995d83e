"""The spill file: usage rows kept on local disk while the queue is full or the store down,
replayed into the store later.

Rows are JSON lines (:func:`encode_row`), in three files beside ``path``:

- ``path`` (``*.spill.jsonl``): rows are appended here, one ``write`` and ``fsync`` per
  call of :meth:`SpillFile.append`.
- ``path.replay``: to replay, the spill file is renamed to this name (so appends go on into
  a fresh ``path``) and read from the front in batches.
- ``path.replay.offset``: the byte offset in ``path.replay`` up to which rows are in the
  store, replaced atomically (write, fsync, rename) after each batch is stored. After a
  crash, replay resumes from it: only the rows stored since the last commit (at most one
  batch) are written twice. When the replay file is used up it is deleted.

The usage table has no unique key on ``request_id`` (rows written before this release
may repeat one), so a replayed row cannot be made idempotent by the database; the offset
bounds what a crash can duplicate instead.

``max_bytes`` bounds the rows waiting on disk (what is in ``path`` plus what is left of
``path.replay``); :meth:`SpillFile.append` takes only what fits and the caller counts the
rest as dropped. A process holds ``path.lock`` (``flock``) while it uses the files; a second
process on the same path (several gateways sharing a config directory) takes
``path.2``, ``path.3`` ... instead, so each file has one writer and one reader. Nothing is
created until rows are spilled; at start, a slot left with rows by a process that is gone is
taken over and replayed.

Every method blocks on file I/O: call them from a worker thread. Methods are thread-safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO

import orjson

from ..stores.usage import UsageRecord

__all__ = ["ReplayBatch", "SpillFile", "decode_row", "encode_row"]

_FIELDS = frozenset(f.name for f in fields(UsageRecord))
# A row is at most about 10 KB once storable (see sanitize.py); a longer line is damage.
_MAX_LINE = 1 << 20
_SLOTS = 16


def encode_row(row: UsageRecord) -> bytes:
    """One JSON line (newline included) for a storable row. Raises ``TypeError`` or
    ``orjson.JSONEncodeError`` for a row that is not (a lone surrogate, say)."""
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def decode_row(line: bytes) -> UsageRecord:
    """The row of one JSON line; fields it does not know are ignored (a newer release's).
    Raises ``ValueError`` or ``TypeError`` for a line that is not a row."""
    data = orjson.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return UsageRecord(**{k: v for k, v in data.items() if k in _FIELDS})


@dataclass(slots=True)
class ReplayBatch:
    """Rows read back from the spill file. ``ends[i]`` is the offset just past ``rows[i]``'s
    line; ``end`` is the offset past the whole batch, ``bad`` the lines that were not rows
    (damaged by a crash mid-append, or edited); commit ``end`` once ``rows`` are stored."""

    rows: list[UsageRecord]
    ends: list[int]
    end: int
    bad: list[bytes]


class SpillFile:
    """A bounded spill file at ``path`` (see the module docstring). Nothing is opened until
    :meth:`open`. Raises ``OSError`` from the file system."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        #: The configured path; ``path`` is the slot in use (``base``, ``base.2`` ...).
        self.base = path
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self._spilled = 0  # bytes in path
        self._replay_size = 0  # bytes in path.replay (0: no replay file)
        self._offset = 0  # committed offset in path.replay
        self._needs_newline = False

    @property
    def replay_path(self) -> Path:
        return _replay_of(self.path)

    @property
    def offset_path(self) -> Path:
        return self.path.with_name(self.path.name + ".replay.offset")

    @property
    def waiting_bytes(self) -> int:
        """Bytes of rows on disk not yet replayed (a cheap read, no I/O)."""
        return self._spilled + self._replay_size - self._offset

    def open(self) -> None:
        """Take over the rows a previous run left in a slot (``path``, ``path.2`` ...) that
        no running process holds. Without any, nothing is touched (no directory, no lock
        file) until the first :meth:`append`."""
        for path in self._slots():
            if (_size(path) or _size(_replay_of(path))) and self._take(path):
                return

    def _slots(self) -> list[Path]:
        base = self.base
        return [base, *(base.with_name(f"{base.name}.{n}") for n in range(2, _SLOTS + 1))]

    def _take(self, path: Path) -> bool:
        """Lock ``path``'s slot and read its state; False when another process holds it."""
        lock = path.with_name(path.name + ".lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return False
        self.path, self._lock_file = path, lock
        self._spilled = _size(path)
        self._replay_size = _size(self.replay_path)
        self._offset = _read_offset(self.offset_path) if self._replay_size else 0
        if self._replay_size and self._offset >= self._replay_size:
            self._finish_replay()
        # A crash mid-append can leave a line without its newline; the next row must not be
        # glued to it.
        self._needs_newline = self._spilled > 0 and _last_byte(path) != b"\n"
        return True

    def _ensure_slot(self) -> None:
        if self._lock_file is not None:
            return
        self.base.parent.mkdir(parents=True, exist_ok=True)
        if not any(self._take(path) for path in self._slots()):
            raise OSError(f"{_SLOTS} processes already spill usage rows next to {self.base}")

    def close(self) -> None:
        """Release the slot's lock."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def append(self, rows: list[UsageRecord]) -> int:
        """Append as many of ``rows`` as fit under ``max_bytes``, in order, and fsync; the
        number appended. A row that cannot be encoded is skipped (not counted). The first
        append locks a free slot; ``OSError`` when none is free."""
        with self._lock:
            self._ensure_slot()
            room = self.max_bytes - self.waiting_bytes
            lines: list[bytes] = [b"\n"] if self._needs_newline else []
            size = len(lines)
            taken = 0
            for row in rows:
                try:
                    line = encode_row(row)
                except (TypeError, orjson.JSONEncodeError):
                    continue
                if size + len(line) > room:
                    break
                lines.append(line)
                size += len(line)
                taken += 1
            if not taken:
                return 0
            with self.path.open("ab") as f:
                f.write(b"".join(lines))
                f.flush()
                os.fsync(f.fileno())
            self._spilled += size
            self._needs_newline = False
            return taken

    def read_batch(self, limit: int) -> ReplayBatch | None:
        """Up to ``limit`` rows from the replay file, starting at the committed offset;
        a used-up replay file is deleted and the spill file renamed in its place. None when
        nothing waits."""
        if self._lock_file is None:
            return None
        if self._replay_size and self._offset >= self._replay_size:
            self._finish_replay()
        if not self._replay_size and not self._claim():
            return None
        batch = ReplayBatch([], [], self._offset, [])
        with self.replay_path.open("rb") as f:
            f.seek(self._offset)
            while len(batch.rows) < limit:
                line = f.readline(_MAX_LINE)
                if not line:
                    break
                if not line.endswith(b"\n") and len(line) == _MAX_LINE:
                    while (more := f.readline(_MAX_LINE)) and not more.endswith(b"\n"):
                        pass
                batch.end = f.tell()
                if not line.strip():
                    continue
                try:
                    batch.rows.append(decode_row(line))
                except (TypeError, ValueError):
                    batch.bad.append(line)
                    continue
                batch.ends.append(batch.end)
        if batch.end == self._offset:  # the replay file ended
            self._finish_replay()
            return self.read_batch(limit) if self._spilled else None
        return batch

    def commit(self, offset: int) -> None:
        """Record that the replay file's rows up to ``offset`` are stored; a replay file
        stored to its end is deleted."""
        if offset <= self._offset:
            return
        if offset >= self._replay_size:
            self._finish_replay()
            return
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        with tmp.open("w") as f:
            f.write(str(offset))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.offset_path)
        with self._lock:
            self._offset = offset

    def _claim(self) -> bool:
        """Rename the spill file to the replay file, if it holds rows."""
        with self._lock:
            if not self._spilled:
                return False
            # A stale offset (a crash between deleting the replay file and its offset) must
            # not apply to the new replay file.
            self.offset_path.unlink(missing_ok=True)
            self.path.replace(self.replay_path)
            self._replay_size, self._offset, self._spilled = self._spilled, 0, 0
            self._needs_newline = False
            return True

    def _finish_replay(self) -> None:
        self.replay_path.unlink(missing_ok=True)
        self.offset_path.unlink(missing_ok=True)
        with self._lock:
            self._replay_size = self._offset = 0


def _replay_of(path: Path) -> Path:
    return path.with_name(path.name + ".replay")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _read_offset(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return max(0, int(path.read_text().strip() or 0))
    return 0
