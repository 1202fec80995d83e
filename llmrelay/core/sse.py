"""Server-sent events: incremental decoding and encoding.

Follows the WHATWG event-stream format as Anthropic and OpenAI use it: ``event:`` and
``data:`` fields, events separated by a blank line, ``\\n`` or ``\\r\\n`` line ends
(a lone ``\\r`` line end is not used by either and is not supported).

The decoder is linear and bounded: each byte is searched once, when it arrives, and an
event still incomplete is held in one growing buffer, never re-copied or re-scanned; an
event larger than ``max_event_bytes`` is an :class:`SSEEventTooLarge` error, so an
upstream that never ends an event costs at most that much memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UpstreamProtocolError
from . import wirejson

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "SSEDecoder",
    "SSEEvent",
    "SSEEventTooLarge",
    "encode_event",
    "parse_block",
]

#: ``server.max_sse_event_mb``'s default: 8 MiB, far above any real event (Anthropic's
#: largest are whole tool inputs or citations, kilobytes to a few hundred KB).
DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class SSEEvent:
    event: str | None
    data: bytes


def _size(n: int) -> str:
    mib = n / (1024 * 1024)
    return f"{mib:g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class SSEEventTooLarge(UpstreamProtocolError):
    """An SSE event grew past the decoder's bound (``limit`` bytes). A 502 like any
    :class:`UpstreamProtocolError`; :meth:`for_account` names the provider."""

    def __init__(self, limit: int, account: str | None = None) -> None:
        who = "provider" if account is None else f"provider {account!r}"
        super().__init__(
            f"{who} sent an SSE event larger than {_size(limit)} (server.max_sse_event_mb)"
        )
        self.limit = limit

    def for_account(self, account: str) -> SSEEventTooLarge:
        """The same error, its message naming the provider account."""
        return SSEEventTooLarge(self.limit, account)


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed by each chunk.

    ``max_event_bytes`` bounds one event (its lines, without the blank line that ends it,
    ``\\r\\n`` counted as one byte).

    Raises (from :meth:`feed`, :meth:`blocks` and :meth:`finish`):
        SSEEventTooLarge: an event, complete or not, is larger than ``max_event_bytes``.
            When the chunk that shows it also completed earlier events, those are returned
            first and the error is raised by the next call (so their usage still counts).
    """

    __slots__ = ("_cr", "_head", "_long", "_max", "_pending")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError("max_event_bytes must be positive")
        self._max = max_event_bytes
        # The incomplete event so far (never holding a blank line, b"\n\n"): ``_head``
        # while it came in one chunk, the common case, which costs no copy; ``_long`` once
        # it spans several, so that it grows in place instead of being re-copied.
        self._head = b""
        self._long: bytearray | None = None
        # The last chunk ended in "\r": held back in case the next one starts with "\n".
        self._cr = False
        self._pending: SSEEventTooLarge | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for the event not yet complete."""
        held = len(self._long) if self._long is not None else len(self._head)
        return held + self._cr

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for block in self.blocks(chunk):
            ev = parse_block(block)
            if ev is not None:
                events.append(ev)
        return events

    def blocks(self, chunk: bytes) -> list[bytes]:
        """The raw event blocks (lines without the blank separator) completed by ``chunk``,
        for callers that want to skip most events without parsing them."""
        if self._pending is not None:
            raise self._pending
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.find(b"\r") >= 0:  # .find: `in` on bytes is twice as slow on 3.11
            chunk = chunk.replace(b"\r\n", b"\n")
            if chunk[-1:] == b"\r":
                chunk = chunk[:-1]
                self._cr = True
        out: list[bytes] = []
        start = 0
        if self._head or self._long is not None:
            # Only the new bytes are searched: the held ones hold no blank line, so the
            # event ends across the boundary ("\n" | "\n") or inside ``chunk``.
            long = self._long
            pending = long if long is not None else self._head
            if pending[-1] == 0x0A and chunk[:1] == b"\n":
                end = len(pending) - 1
            else:
                end = chunk.find(b"\n\n")
                if end < 0:
                    self._hold(chunk)
                    return out
                end += len(pending)
            chunk = b"".join((long, chunk)) if long is not None else self._head + chunk
            self._head = b""
            self._long = None
            if end > self._max:
                self._overflow()
            out.append(chunk[:end])
            start = end + 2
        while True:
            end = chunk.find(b"\n\n", start)
            if end < 0:
                break
            out.append(chunk[start:end])
            start = end + 2
        if len(chunk) > self._max and any(len(b) > self._max for b in out):
            self._overflow()
        if start < len(chunk):
            self._head = chunk[start:] if start else chunk
            if len(self._head) > self._max + 1:  # + 1: a "\n" that may start the separator
                if not out:
                    self._overflow()
                self._pending = SSEEventTooLarge(self._max)
                self._head = b""
        return out

    def finish(self) -> None:
        """At the end of the stream: raise the error a last chunk left pending."""
        if self._pending is not None:
            raise self._pending

    def _hold(self, chunk: bytes) -> None:
        if self._long is None:
            self._long = bytearray(self._head)
            self._head = b""
        self._long += chunk
        if len(self._long) > self._max + 1:
            self._overflow()

    def _overflow(self) -> None:
        self._head = b""
        self._long = None  # the memory goes now, not when the decoder does
        self._cr = False
        raise SSEEventTooLarge(self._max)


def parse_block(block: bytes) -> SSEEvent | None:
    """One raw block -> its event name and data (``None`` for a comment-only block)."""
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # ':' starts a comment
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if event is None and not data:
        return None
    return SSEEvent(event, b"\n".join(data))


def encode_event(event: str, data: object) -> bytes:
    """One SSE event with an ``event:`` line, as Anthropic sends them; ``data`` as JSON
    (exact for lone surrogates and big integers, see :func:`wirejson.dumps`)."""
    return b"event: " + event.encode() + b"\ndata: " + wirejson.dumps(data) + b"\n\n"
