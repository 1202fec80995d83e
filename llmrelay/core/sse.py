"""Server-sent events: incremental decoding and encoding.

Follows the WHATWG event-stream format as Anthropic and OpenAI use it: ``event:`` and
``data:`` fields, events separated by a blank line, ``\\n`` or ``\\r\\n`` line ends
(a lone ``\\r`` line end is not used by either and is not supported).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

__all__ = ["SSEDecoder", "SSEEvent", "encode_event", "parse_block"]


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
        events: list[SSEEvent] = []
        for block in self.blocks(chunk):
            ev = parse_block(block)
            if ev is not None:
                events.append(ev)
        return events

    def blocks(self, chunk: bytes) -> list[bytes]:
        """The raw event blocks (lines without the blank separator) completed by ``chunk``,
        for callers that want to skip most events without parsing them."""
        buf = self._buf + chunk if self._buf else chunk
        if buf.find(b"\r") >= 0:  # .find: `in` on bytes is twice as slow on 3.11
            buf = buf.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            out.append(buf[start:end])
            start = end + 2
        self._buf = buf[start:]
        return out


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
    """One SSE event with an ``event:`` line, as Anthropic sends them."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
