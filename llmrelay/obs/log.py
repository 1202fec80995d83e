"""Structured logging: one JSON object per line on stderr (``logging.format: json``, the
default), or one readable line (``text``: time, level, logger, message, then the fields as
``name=value``).

Fields given as ``extra=`` go into the object. Nothing that reaches a logger here may
hold a key: callers log key *names*, never secrets.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "Throttled", "format_line", "setup_logging"]

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


class TextFormatter(logging.Formatter):
    """``2026-12-06T23:40:00.123Z warning llmrelay: message name=value ...``; values that
    are not plain words are written as JSON strings."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"{ts}.{int(record.msecs):03d}Z {record.levelname.lower()} {record.name}:",
            record.getMessage(),
        ]
        for k, v in record.__dict__.items():
            if k not in _STANDARD:
                text = v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
                if not text or any(c in text for c in ' "=\n'):
                    text = orjson.dumps(text).decode()
                parts.append(f"{k}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


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


def format_line(msg: str, fields: dict[str, object], fmt: str = "json") -> str:
    """One ``info`` line of the ``llmrelay`` logger in ``fmt``, for what is printed
    whatever the level (the startup line)."""
    record = logging.makeLogRecord(
        {"name": "llmrelay", "levelname": "INFO", "levelno": logging.INFO, "msg": msg, **fields}
    )
    formatter = TextFormatter() if fmt == "text" else JsonFormatter()
    return formatter.format(record)


def setup_logging(level: str, fmt: str = "json") -> None:
    """Send llmrelay's logs to stderr at ``level`` (debug|info|warning|error), as JSON lines
    (``fmt`` ``json``) or readable ones (``text``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
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
    # The OpenTelemetry SDK's export warnings (a collector down or slow, a full queue; the
    # drops are counted in llmrelay_spans_dropped_total) in the same format, not as plain
    # text from Python's last-resort handler.
    otel = logging.getLogger("opentelemetry")
    otel.handlers[:] = [handler]
    otel.setLevel(max(logging.WARNING, root.level))
    otel.propagate = False
