"""AWS event-stream frames -> Anthropic SSE bytes, with botocore's own frame parser.

Each ``chunk`` event's payload is ``{"bytes": "<base64 Anthropic event JSON>"}``
(``anthropic/lib/bedrock/_stream_decoder.py``); it goes to the client as
``event: <type>`` + ``data: <that JSON>``, unchanged. An ``exception`` frame becomes an
Anthropic ``error`` event.

Frames are cut here, by the length each one starts with, and handed to botocore whole:
its ``EventStreamBuffer`` re-copies everything it holds on every chunk (quadratic for a
frame that arrives in many pieces), and a frame longer than an event of
``max_event_bytes`` can need is refused as soon as its length is read.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import NoReturn

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError  # type: ignore[import-untyped]

from ...core import wirejson
from ...core.sse import DEFAULT_MAX_EVENT_BYTES
from ...errors import UpstreamProtocolError
from .codec import exception_event

__all__ = ["FrameError", "SSEFromEventStream", "error_sse"]

# A frame is a 12-byte prelude, headers (Bedrock sends three, ~100 bytes; botocore allows
# 128 KiB) and the payload, base64 (4/3) inside a small JSON object with Bedrock's padding.
_PRELUDE_AND_CRC = 16
_FRAME_OVERHEAD = 160 * 1024


@dataclass(slots=True)
class FrameError:
    """An exception frame: its name (``throttlingException``...) and message."""

    name: str
    message: str


class SSEFromEventStream:
    """Feed raw response bytes; get back SSE bytes and any exception frames, in order.

    ``account`` names the provider in errors; ``max_event_bytes`` bounds one Anthropic
    event (``server.max_sse_event_mb``), hence one frame.

    Raises (from :meth:`feed`):
        UpstreamProtocolError: a frame that is too large, fails botocore's checks (length,
            CRC, headers), or whose ``chunk`` payload is not base64 of a JSON object.
    """

    def __init__(self, account: str | None = None, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        self._who = "provider" if account is None else f"provider {account!r}"
        self._max_event = max_event_bytes
        self._max_frame = max_event_bytes * 4 // 3 + _FRAME_OVERHEAD
        self._buf = bytearray()
        self._parser = EventStreamBuffer()

    def feed(self, chunk: bytes) -> list[bytes | FrameError]:
        buf = self._buf
        buf += chunk
        out: list[bytes | FrameError] = []
        start = 0
        while len(buf) - start >= 4:
            total = int.from_bytes(buf[start : start + 4], "big")
            if total > self._max_frame:
                self._fail(
                    f"an event-stream frame of {total} bytes, larger than an event of"
                    f" {self._max_event} bytes needs (server.max_sse_event_mb)"
                )
            if total < _PRELUDE_AND_CRC:
                self._fail(f"an event-stream frame {total} bytes long, shorter than its prelude")
            if len(buf) - start < total:
                break
            item = self._frame(bytes(buf[start : start + total]))
            if item is not None:
                out.append(item)
            start += total
        if start:
            del buf[:start]
        return out

    def _frame(self, frame: bytes) -> bytes | FrameError | None:
        self._parser.add_data(frame)
        try:
            message = next(self._parser)
        except ParserError as err:
            self._fail(f"a malformed event-stream frame ({type(err).__name__}: {err})")
        headers = message.headers
        kind = headers.get(":message-type")
        if kind == "event" and headers.get(":event-type") == "chunk":
            return _sse(self._chunk_event(message.payload))
        if kind in ("exception", "error"):
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
            try:
                text = str(orjson.loads(message.payload).get("message", ""))
            except (orjson.JSONDecodeError, AttributeError):
                text = message.payload.decode("utf-8", "replace")
            return FrameError(name, text)
        return None

    def _chunk_event(self, payload: bytes) -> tuple[str, bytes]:
        """The Anthropic event a ``chunk`` payload carries: its type and its JSON."""
        try:
            wrapper = orjson.loads(payload)
            event_json = base64.b64decode(wrapper["bytes"], validate=True)
        except (ValueError, TypeError, KeyError):  # binascii.Error and JSONDecodeError too
            self._fail('an event-stream chunk whose payload is not {"bytes": <base64>}')
        try:
            event = wirejson.loads(event_json)
        except wirejson.InvalidJSON:
            event = None
        if not isinstance(event, dict):
            self._fail("an event-stream chunk whose event is not a JSON object")
        if len(event_json) > self._max_event:
            self._fail(f"an event larger than {self._max_event} bytes (server.max_sse_event_mb)")
        return str(event.get("type") or "message"), event_json

    def _fail(self, what: str) -> NoReturn:
        self._buf = bytearray()
        raise UpstreamProtocolError(f"{self._who} sent {what}")


def _sse(event: tuple[str, bytes]) -> bytes:
    kind, event_json = event
    return b"event: " + kind.encode() + b"\ndata: " + event_json + b"\n\n"


def error_sse(err: FrameError) -> bytes:
    event = exception_event(_exception_name(err.name), err.message)
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"


def _exception_name(name: str) -> str:
    """Frame names are lowerCamel (``throttlingException``); HTTP ones are UpperCamel."""
    return name[:1].upper() + name[1:]
