"""Bedrock's event-stream frames: cut anywhere, bounded, and malformed frames are a typed
502 (UpstreamProtocolError), never a parser's own exception."""

from __future__ import annotations

import base64
import json

import pytest

from llmrelay.errors import UpstreamProtocolError
from llmrelay.providers.bedrock.stream import FrameError, SSEFromEventStream
from tests.fakes.bedrock_upstream import chunk_frame, eventstream_frame, exception_frame

EVENTS = [
    {"type": "message_start", "message": {"id": "m", "content": [], "usage": {}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hé"}},
    {"type": "message_stop"},
]
CHUNK_HEADERS = {
    ":event-type": "chunk",
    ":content-type": "application/json",
    ":message-type": "event",
}


def feed_all(frames: SSEFromEventStream, raw: bytes, size: int) -> list[bytes | FrameError]:
    return [item for i in range(0, len(raw), size) for item in frames.feed(raw[i : i + size])]


def test_frames_cut_anywhere_give_the_same_events() -> None:
    raw = b"".join(chunk_frame(e, pad=i) for i, e in enumerate(EVENTS))
    raw += exception_frame("throttlingException", "slow down")
    whole = SSEFromEventStream().feed(raw)
    assert whole[0].startswith(b"event: message_start\ndata: {")
    assert b'"text":"h\xc3\xa9"' in whole[1]
    assert whole[-1] == FrameError("throttlingException", "slow down")
    assert len(whole) == 4
    for size in (1, 3, 17, 1000):
        assert feed_all(SSEFromEventStream(), raw, size) == whole


def test_a_long_frame_in_small_chunks_is_parsed_once() -> None:
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "x" * 500_000},
    }
    raw = chunk_frame(event)
    frames = SSEFromEventStream()
    handed: list[int] = []
    add_data = frames._parser.add_data
    frames._parser.add_data = lambda data: (handed.append(len(data)), add_data(data))[1]
    out = feed_all(frames, raw, 1024)
    assert len(out) == 1 and b'"x' in out[0]
    assert handed == [len(raw)]  # botocore gets the whole frame once, not every piece


def test_a_frame_longer_than_an_event_can_need_is_refused_at_its_length() -> None:
    frames = SSEFromEventStream("acme", max_event_bytes=1024)
    with pytest.raises(UpstreamProtocolError) as info:
        frames.feed((100 * 1024 * 1024).to_bytes(4, "big"))
    assert str(info.value).startswith(
        "provider 'acme' sent an event-stream frame of 104857600 bytes"
    )
    assert info.value.status == 502


def test_an_event_over_the_bound_is_refused() -> None:
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "x" * 4000},
    }
    with pytest.raises(UpstreamProtocolError, match="an event larger than 1024 bytes"):
        SSEFromEventStream(max_event_bytes=1024).feed(chunk_frame(event))


def _chunk(payload: bytes) -> bytes:
    return eventstream_frame(CHUNK_HEADERS, payload)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (chunk_frame(EVENTS[0])[:-1] + b"\x00", "a malformed event-stream frame (ChecksumMismatch"),
        (b"\x00\x00\x00\x05" + b"\x00" * 12, "shorter than its prelude"),
        (_chunk(b"not json"), 'payload is not {"bytes": <base64>}'),
        (_chunk(b'{"p": "abc"}'), 'payload is not {"bytes": <base64>}'),
        (_chunk(b'{"bytes": "***"}'), 'payload is not {"bytes": <base64>}'),
        (_chunk(b'{"bytes": "\xc3\xa9"}'), 'payload is not {"bytes": <base64>}'),
        (_chunk(b'{"bytes": 5}'), 'payload is not {"bytes": <base64>}'),
        (_chunk(b'["bytes"]'), 'payload is not {"bytes": <base64>}'),
        (
            _chunk(json.dumps({"bytes": base64.b64encode(b"[1]").decode()}).encode()),
            "event is not a JSON object",
        ),
        (
            _chunk(json.dumps({"bytes": base64.b64encode(b"{oops").decode()}).encode()),
            "event is not a JSON object",
        ),
    ],
)
def test_malformed_frames_are_upstream_protocol_errors(raw: bytes, message: str) -> None:
    with pytest.raises(UpstreamProtocolError) as info:
        SSEFromEventStream("acme").feed(raw)
    assert str(info.value).startswith("provider 'acme' sent ")
    assert message in str(info.value)


def test_an_event_with_a_lone_surrogate_escape_passes_unchanged() -> None:
    event_json = (
        b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\\ud800"}}'
    )
    payload = json.dumps({"bytes": base64.b64encode(event_json).decode()}).encode()
    assert SSEFromEventStream().feed(_chunk(payload)) == [
        b"event: content_block_delta\ndata: " + event_json + b"\n\n"
    ]
