"""AWS event-stream frames -> Anthropic SSE bytes, with botocore's own frame parser.

Each ``chunk`` event's payload is ``{"bytes": "<base64 Anthropic event JSON>"}``
(``anthropic/lib/bedrock/_stream_decoder.py``); it goes to the client as
``event: <type>`` + ``data: <that JSON>``, unchanged. An ``exception`` frame becomes an
Anthropic ``error`` event.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson
from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped]

from .codec import exception_event

__all__ = ["FrameError", "SSEFromEventStream"]


@dataclass(slots=True)
class FrameError:
    """An exception frame: its name (``throttlingException``...) and message."""

    name: str
    message: str


def _sse(event_json: bytes) -> bytes:
    try:
        kind = orjson.loads(event_json).get("type", "message")
    except (orjson.JSONDecodeError, AttributeError):
        kind = "message"
    return b"event: " + str(kind).encode() + b"\ndata: " + event_json + b"\n\n"


class SSEFromEventStream:
    """Feed raw response bytes; get back SSE bytes and any exception frames, in order."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> list[bytes | FrameError]:
        self._buffer.add_data(chunk)
        out: list[bytes | FrameError] = []
        for message in self._buffer:
            headers = message.headers
            kind = headers.get(":message-type")
            if kind == "event" and headers.get(":event-type") == "chunk":
                payload = orjson.loads(message.payload)
                out.append(_sse(base64.b64decode(payload.get("bytes", ""))))
            elif kind in ("exception", "error"):
                name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
                try:
                    text = str(orjson.loads(message.payload).get("message", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    text = message.payload.decode("utf-8", "replace")
                out.append(FrameError(name, text))
        return out


def error_sse(err: FrameError) -> bytes:
    event = exception_event(_exception_name(err.name), err.message)
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"


def _exception_name(name: str) -> str:
    """Frame names are lowerCamel (``throttlingException``); HTTP ones are UpperCamel."""
    return name[:1].upper() + name[1:]
