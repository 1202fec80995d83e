"""Structured logging: one JSON object per line on stderr.

Fields given as ``extra=`` go into the object. Nothing that reaches a logger here may
hold a key: callers log key *names*, never secrets.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

__all__ = ["JsonFormatter", "Throttled", "setup_logging"]

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STANDARD:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class Throttled:
    """One logger line per ``interval_s`` at most, for events a client can repeat at will
    (malformed requests, refused connections, header timeouts).

    Lines skipped in between are counted; the next line that goes out carries the count as
    ``suppressed``. State lives on the instance (one per kind of event, held by the object
    that reports it). Not thread-safe: call it from the event loop.
    """

    __slots__ = ("_interval_s", "_level", "_logger", "_next", "_skipped")

    def __init__(self, logger: logging.Logger, level: int, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._level = level
        self._interval_s = interval_s
        self._next = 0.0
        self._skipped = 0

    def log(self, msg: str, extra: dict[str, object]) -> None:
        """Log ``msg`` with ``extra`` now, or count it if a line went out less than
        ``interval_s`` ago."""
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return
        self._next = now + self._interval_s
        if self._skipped:
            extra = {**extra, "suppressed": self._skipped}
            self._skipped = 0
        self._logger.log(self._level, msg, extra=extra)


def setup_logging(level: str) -> None:
    """Send llmrelay's logs to stderr as JSON lines at ``level`` (debug|info|warning|error)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("llmrelay")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # aiohttp's own reports (malformed HTTP, handler crashes) go out in the same format.
    server = logging.getLogger("aiohttp")
    server.handlers[:] = [handler]
    server.setLevel(max(logging.WARNING, root.level))
    server.propagate = False
    # psycopg's pool warns on every failed reconnect (about once a second while PostgreSQL is
    # down); the key cache and the usage writer already report an outage, once and with backoff.
    pool = logging.getLogger("psycopg.pool")
    pool.handlers[:] = [handler]
    pool.setLevel(logging.ERROR)
    pool.propagate = False
