"""The dead-letter file: usage rows no store would take, kept for a person to look at.

A row lands here only when the store refused it twice for its content, as recorded and in
its reduced ASCII-only form (see :mod:`llmrelay.obs.sanitize`), or when a line of the
spill file could not be read back as a row. Each entry is one JSON line, ASCII only (so
any string survives, lone surrogates included, as ``\\ud800`` escapes)::

    {"at": 1767225600.0, "reason": "RejectedRowsError: ...", "row": {"ts": ..., ...}}
    {"at": 1767225600.0, "reason": "unreadable spill line", "line": "<the line's text>"}

``at`` is the Unix time it was written. The file grows to ``max_bytes`` at most; past that,
entries are refused and the caller counts the rows as dropped. Appends block on file I/O
(call them from a worker thread) and are thread-safe; several processes may share a file
(each entry is one ``write`` in append mode).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..stores.usage import UsageRecord

__all__ = ["DeadLetterFile"]


class DeadLetterFile:
    """JSON lines at ``path``, at most ``max_bytes``. Raises ``OSError`` from the file system."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def add_row(self, row: UsageRecord, reason: str) -> bool:
        """Append one refused row; False when the file is full."""
        return self._append({"at": time.time(), "reason": reason, "row": asdict(row)})

    def add_line(self, line: bytes, reason: str) -> bool:
        """Append one line that could not be read as a row; False when the file is full."""
        text = line.decode("utf-8", "backslashreplace").rstrip("\n")
        return self._append({"at": time.time(), "reason": reason, "line": text})

    def _append(self, entry: dict[str, Any]) -> bool:
        # json, not orjson: ensure_ascii writes lone surrogates as escapes where orjson
        # refuses them, and NaN as a bare NaN token (this file is for reading, not loading).
        data = (json.dumps(entry, ensure_ascii=True, default=repr) + "\n").encode("ascii")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size + len(data) > self.max_bytes:
                return False
            with self.path.open("ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        return True
