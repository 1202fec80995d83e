"""Server-sent events: incremental decoding and encoding.

Follows the WHATWG event-stream format as Anthropic and OpenAI use it: ``event:`` and
``data:`` fields, events separated by a blank line, ``\\n`` or ``\\r\\n`` line ends
(a lone ``\\r`` line end is not used by either and is not supported).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

__all__ = ["SSEDecoder", "SSEEvent", "encode_event"]


@dataclass(slots=True, frozen=True)
class SSEEvent:
    event: str | None
    data: bytes


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed by each chunk."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            ev = _parse_block(buf[start:end])
            if ev is not None:
                events.append(ev)
            start = end + 2
        self._buf = buf[start:]
        return events


def _parse_block(block: bytes) -> SSEEvent | None:
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
    """One SSE event with an ``event:`` line, as Anthropic sends them."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
