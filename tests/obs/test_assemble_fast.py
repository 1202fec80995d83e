"""A captured stream is assembled the same way whichever path reads it (``obs/assemble.py``):
a stream in the usual shape has its data lines found by one search and its runs of deltas
joined before the fold; any other is decoded event by event. Both give the body the request
log stored before the search: text, tool input, thinking, citations, errors, cut streams,
bytes that are not a stream, for Anthropic's and OpenAI's wire.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.codecs import anthropic as anthropic_codec
from llmrelay.config.observability import RequestLogConfig
from llmrelay.core.accumulate import Accumulator, StreamFailed
from llmrelay.core.events import Event
from llmrelay.core.sse import SSEDecoder
from llmrelay.obs import assemble
from llmrelay.obs.capture import CapturePolicy
from tests.obs.support import good

WIRE = Path(__file__).parent.parent / "wire"


# -- the assembly as it was: every event decoded, parsed, decoded and folded on its own ------


def _objects_one_by_one(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for ev in SSEDecoder().feed(raw + b"\n\n"):
        if ev.data == b"[DONE]":
            out.append(None)
            continue
        try:
            out.append(orjson.loads(ev.data))
        except orjson.JSONDecodeError:
            continue
    return out


def _anthropic_one_by_one(raw: bytes) -> dict[str, Any]:
    events: list[Event] = []
    for data in _objects_one_by_one(raw):
        if isinstance(data, dict):
            event = anthropic_codec.decode_event(data)
            if event is not None:
                events.append(event)
    acc = Accumulator()
    error = None
    try:
        for event in events:
            acc.feed(event)
    except StreamFailed as failed:
        error = {"type": failed.error_type, "message": failed.message}
    if acc.response is None and error is None:
        raise ValueError("no message_start")
    return assemble.anthropic_message(acc.response, error)


def _outcome(fold: Any, raw: bytes) -> Any:
    """The body, or the kind of error that makes the request log keep the bytes as text."""
    try:
        return orjson.dumps(fold(raw))
    except Exception:
        return "kept as text"


def _same(raw: bytes) -> None:
    assert _outcome(assemble.anthropic_stream, raw) == _outcome(_anthropic_one_by_one, raw)


# -- streams -------------------------------------------------------------------------------


def _event(data: Any, name: str | None = None) -> bytes:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    if name is None and isinstance(data, dict):
        name = str(data.get("type"))
    head = b"" if name is None else b"event: " + name.encode() + b"\n"
    return head + b"data: " + body + b"\n\n"


START = _event(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    }
)
BLOCKS = {
    "text": {"type": "text", "text": ""},
    "tool_use": {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {}},
    "thinking": {"type": "thinking", "thinking": "", "signature": ""},
}
KINDS = {"text": "text_delta", "tool_use": "input_json_delta", "thinking": "thinking_delta"}
TEXTS = ["Hello", "", " wörld ", 'say "hi"\n', "\\", "😀", "data: x", '{"a": ', "1}", "\u2028"]


def _start(index: int, block: str) -> bytes:
    return _event({"type": "content_block_start", "index": index, "content_block": BLOCKS[block]})


def _delta(index: Any, kind: str, text: Any) -> bytes:
    key = assemble._DELTA_TEXT.get(kind, "text")
    return _event(
        {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: text}}
    )


def _stop(index: int) -> bytes:
    return _event({"type": "content_block_stop", "index": index})


END = _event(
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 30},
    }
) + _event({"type": "message_stop"})


def _tool_stream(parts: list[str]) -> bytes:
    deltas = b"".join(_delta(1, "input_json_delta", p) for p in parts)
    return (
        START
        + _start(0, "text")
        + _delta(0, "text_delta", "Let me look.")
        + _stop(0)
        + _start(1, "tool_use")
        + deltas
        + _stop(1)
        + END
    )


SIGNATURE = _event(
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"},
    }
)
CITATION = _event(
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {
            "type": "citations_delta",
            "citation": {"type": "char_location", "cited_text": "x", "document_index": 0},
        },
    }
)
ERROR = _event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})

STREAMS: dict[str, bytes] = {
    "text": (WIRE / "anthropic/text_stream.sse").read_bytes(),
    "tool use": (WIRE / "anthropic/tool_use_stream.sse").read_bytes(),
    "thinking": (WIRE / "anthropic/thinking_stream.sse").read_bytes(),
    "error midstream": (WIRE / "anthropic/error_midstream.sse").read_bytes(),
    "tool input in pieces": _tool_stream(['{"loc', 'ation": "Pa', "ris", '"}']),
    "tool input not JSON": _tool_stream(['{"loc', "ation"]),
    "thinking, signature, text": START
    + _start(0, "thinking")
    + _delta(0, "thinking_delta", "one, ")
    + _delta(0, "thinking_delta", "two")
    + SIGNATURE
    + _stop(0)
    + _start(1, "text")
    + b"".join(_delta(1, "text_delta", t) for t in TEXTS)
    + _stop(1)
    + END,
    "citations between texts": START
    + _start(0, "text")
    + _delta(0, "text_delta", "a")
    + CITATION
    + _delta(0, "text_delta", "b")
    + _stop(0)
    + END,
    "a delta of the wrong type for its block": START
    + _start(0, "text")
    + _delta(0, "text_delta", "a")
    + _delta(0, "thinking_delta", "b")
    + END,
    "a delta to a block never started": START + _delta(3, "text_delta", "a") + END,
    "an index that is a float or negative": START
    + _start(0, "text")
    + _delta(0, "text_delta", "a")
    + _delta(0.0, "text_delta", "b")
    + _delta(0, "text_delta", "c")
    + _delta(-1, "text_delta", "d")
    + END,
    "a text that is not a string": START
    + _start(0, "text")
    + _delta(0, "text_delta", "a")
    + _delta(0, "text_delta", 5)
    + END,
    "an unknown delta type": START
    + _start(0, "text")
    + _delta(0, "text_delta", "a")
    + _delta(0, "future_delta", "b")
    + _delta(0, "text_delta", "c")
    + END,
    "error then more": START + _start(0, "text") + _delta(0, "text_delta", "a") + ERROR + END,
    "deltas before message_start": _start(0, "text") + _delta(0, "text_delta", "a") + START + END,
    "no message_start": _start(0, "text") + _delta(0, "text_delta", "a"),
    "data that is not JSON": START
    + _start(0, "text")
    + _event(b"{not json", "content_block_delta")
    + _delta(0, "text_delta", "a")
    + _event(b"[DONE]")
    + END,
    "empty data": START + _event(b"", "ping") + END,
    "a comment and an id line": START + b": keep-alive\n\n" + b"id: 7\n" + END,
    "two data lines in one event": START
    + b'event: content_block_start\ndata: {"type":"content_block_start","index":0,\n'
    + b'data: "content_block":{"type":"text","text":""}}\n\n'
    + _delta(0, "text_delta", "a")
    + END,
    "no space after the colon": START.replace(b"data: ", b"data:") + END,
    "an event name with a space": START + _event({"type": "ping"}, "pi ng") + END,
    "a data line inside an event line": START
    + b'event: x data: {"type":"error","error":{"type":"e"}}\ndata: {"type":"ping"}\n\n'
    + END,
    "not a stream": b'{"type":"message","content":[]}',
    "nothing": b"",
}


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("variant", ["as sent", "crlf", "cut", "cut mid-event", "unended"])
def test_anthropic_streams_assemble_as_event_by_event(name: str, variant: str) -> None:
    raw = STREAMS[name]
    if variant == "crlf":
        raw = raw.replace(b"\n", b"\r\n")
    elif variant == "cut":
        raw = raw[: raw.rfind(b"\n\n", 0, len(raw) // 2) + 2]
    elif variant == "cut mid-event":
        raw = raw[: len(raw) * 2 // 3]
    elif variant == "unended":
        raw = raw.rstrip(b"\n")
    _same(raw)


PIECES = [
    START,
    START,
    _start(0, "text"),
    _start(1, "tool_use"),
    _start(2, "thinking"),
    _stop(0),
    _stop(1),
    _stop(2),
    SIGNATURE,
    CITATION,
    ERROR,
    END,
    _event({"type": "ping"}),
    b": comment\n\n",
    _event(b"{cut"),
    *(_delta(i, KINDS[b], t) for i, b in enumerate(BLOCKS) for t in TEXTS),
    _delta(1, "input_json_delta", '{"a": 1}'),
]


@settings(max_examples=500, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    cut=st.integers(min_value=0, max_value=60),
)
def test_any_anthropic_stream_assembles_as_event_by_event(pieces: list[bytes], cut: int) -> None:
    raw = b"".join(pieces)
    _same(raw)
    _same(raw[: max(0, len(raw) - cut)])


def _openai_one_by_one(raw: bytes) -> dict[str, Any]:
    """``openai_stream`` over the data as decoded event by event."""
    real = assemble._sse_objects
    assemble._sse_objects = _objects_one_by_one  # type: ignore[assignment]
    try:
        return assemble.openai_stream(raw)
    finally:
        assemble._sse_objects = real


@pytest.mark.parametrize(
    "name", ["text_stream", "tool_calls_stream", "reasoning_stream", "length_stream"]
)
@pytest.mark.parametrize("variant", ["as sent", "crlf", "cut mid-event", "no [DONE]", "junk"])
def test_openai_streams_assemble_as_event_by_event(name: str, variant: str) -> None:
    raw = (WIRE / "openai" / f"{name}.sse").read_bytes()
    if variant == "crlf":
        raw = raw.replace(b"\n", b"\r\n")
    elif variant == "cut mid-event":
        raw = raw[: len(raw) * 2 // 3]
    elif variant == "no [DONE]":
        raw = raw.replace(b"data: [DONE]\n\n", b"")
    elif variant == "junk":
        raw = raw.replace(b"\n\n", b"\n\ndata: {x\n\n", 1) + b'data: {"error":{"message":"m"}}\n\n'
    fast = _outcome(assemble.openai_stream, raw)
    assert fast == _outcome(_openai_one_by_one, raw)


@pytest.mark.parametrize("surface", ["anthropic", "openai"])
@pytest.mark.parametrize("max_body_kb", [1, 64])
def test_the_stored_body_of_a_stream_past_its_bound_is_the_same(
    surface: str, max_body_kb: int
) -> None:
    """A stream kept up to its bound (8 times ``max_body_kb``) is cut between two chunks, maybe
    mid-event: stored as the message up to there, as before."""
    if surface == "anthropic":
        raw = _tool_stream([f'{{"n{i}": "{"x" * 40}", ' for i in range(300)] + ['"z": 1}'])
    else:
        raw = (WIRE / "openai/text_stream.sse").read_bytes() * 40
    row = good(1, surface=surface)
    config = RequestLogConfig(bodies="all", max_body_kb=max_body_kb)
    bodies = CapturePolicy(config).capture(row, surface, "alice", None)
    assert bodies is not None
    for at in range(0, len(raw), 333):
        bodies.chunk(raw[at : at + 333])
    stored = bodies.render(row)
    assert stored is not None and stored.response is not None
    kept = b"".join(bodies._chunks)
    fold = _anthropic_one_by_one if surface == "anthropic" else _openai_one_by_one
    try:
        expected = orjson.dumps(fold(kept)).decode()
    except Exception:
        expected = kept.decode("utf-8", "replace")
    assert stored.response == expected[: len(stored.response)]
    assert stored.response_truncated == (len(kept) < len(raw) or len(expected) > max_body_kb * 1024)
