"""Structured logging: one JSON object per line on stderr.

Fields given as ``extra=`` go into the object. Nothing that reaches a logger here may
hold a key: callers log key *names*, never secrets.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

__all__ = ["JsonFormatter", "setup_logging"]

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
