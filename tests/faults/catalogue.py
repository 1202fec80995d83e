"""The fault catalogue: what a broken provider sends, in each provider wire.

One function per fault, ``fault(wire, stream) -> Reply`` for the fakes in ``tests/fakes/``
(all of them serve a ``Reply``). The wires:

* ``anthropic``: Messages JSON and SSE with ``event:`` lines (``FakeAnthropic``);
* ``openai``: Chat Completions JSON and ``data:`` SSE ending in ``[DONE]`` (``FakeOpenAI``);
* ``bedrock``: Anthropic JSON for InvokeModel, AWS event-stream frames carrying Anthropic
  events for the stream (``FakeBedrock``);
* ``vertex``: Anthropic JSON and SSE on Vertex's URL (``FakeVertex``).

Every stream that gets as far as a first event starts with ``INPUT_TOKENS`` input tokens
(``message_start``; an OpenAI stream has no usage before its last chunk), so the usage row
shows what was counted before the fault.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

from tests.fakes.anthropic_upstream import Reply, json_reply
from tests.fakes.bedrock_upstream import bedrock_stream_reply, eventstream_frame
from tests.fakes.openai_upstream import chunks_sse

__all__ = [
    "FAULTS",
    "INPUT_TOKENS",
    "JSON_FAULTS",
    "OUTPUT_TOKENS",
    "STREAM_FAULTS",
    "TRICKLE_EVERY_S",
    "WIRES",
    "Fault",
    "ProviderWire",
    "in_one_read",
]

ProviderWire = Literal["anthropic", "openai", "bedrock", "vertex"]
WIRES: tuple[ProviderWire, ...] = ("anthropic", "openai", "bedrock", "vertex")

INPUT_TOKENS = 7
OUTPUT_TOKENS = 3
#: A trickle sends one byte this often (the gateway's ``total_s`` is a few of these).
TRICKLE_EVERY_S = 0.3
#: The pause between the parts of a faulty stream, so that each part is a read of its own
#: and the fault is met where the catalogue puts it (after the first event, say).
GAP_S = 0.03
#: More than ``server.max_sse_event_mb`` (0.05 MiB) in the gateway the matrix runs.
ENDLESS_BYTES = 80 * 1024
#: The length a never-ending Bedrock frame declares: more than an event of 0.05 MiB needs.
ENDLESS_FRAME_BYTES = 1024 * 1024

_SSE = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_EVENTSTREAM = {
    "content-type": "application/vnd.amazon.eventstream",
    "x-amzn-bedrock-content-type": "application/json",
}
_JSON = {"content-type": "application/json"}
_HTML = b"<!DOCTYPE html>\n<html><body><h1>Down for maintenance</h1></body></html>\n"


# -- well-formed answers, each wire ----------------------------------------------------------
def _message(
    content: object = None, input_tokens: int = INPUT_TOKENS, output_tokens: int = OUTPUT_TOKENS
) -> dict[str, Any]:
    """An Anthropic ``Message`` (``anthropic/types/message.py``)."""
    return {
        "id": "msg_fault",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Hello"}] if content is None else content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def _completion(
    choices: object = None,
    prompt_tokens: int = INPUT_TOKENS,
    completion_tokens: int = OUTPUT_TOKENS,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` (``openai/types/chat/chat_completion.py``)."""
    message = {"role": "assistant", "content": "Hello", "refusal": None}
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}]
        if choices is None
        else choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _events(
    input_tokens: int = INPUT_TOKENS, output_tokens: int = OUTPUT_TOKENS
) -> list[dict[str, Any]]:
    """A whole Anthropic stream (``tests/wire/anthropic/text_stream.sse`` shaped), as dicts."""
    start = {**_message([], input_tokens, 1), "stop_reason": None}
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]  # fmt: skip


def _chunks(
    prompt_tokens: int = INPUT_TOKENS, completion_tokens: int = OUTPUT_TOKENS
) -> list[dict[str, Any]]:
    """A whole OpenAI stream with its usage chunk (the gateway always asks for usage)."""
    head = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1767225600,
            "model": "gpt-4o"}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice], "usage": None}

    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        {**head, "choices": [], "usage": usage},
    ]


def _sse(events: Sequence[dict[str, Any]]) -> list[bytes]:
    return [f"event: {e['type']}\ndata: {_dumps(e)}\n\n".encode() for e in events]


def _data(chunks: Sequence[object]) -> list[bytes]:
    return [chunks_sse([c], done=False).encode() for c in chunks]


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _stream(wire: ProviderWire, parts: Sequence[bytes], **kw: Any) -> Reply:
    """A 200 stream of raw ``parts``, each written and flushed on its own, ``GAP_S`` apart."""
    headers = _EVENTSTREAM if wire == "bedrock" else _SSE
    kw.setdefault("delay_s", GAP_S)
    return Reply(headers=headers, events=tuple(parts), **kw)


def _frames(events: Sequence[dict[str, Any]]) -> list[bytes]:
    """Anthropic events as Bedrock ``chunk`` frames, ``message_stop`` with its metrics."""
    reply = bedrock_stream_reply(events)
    return list(reply.events or ())


def _whole_stream(wire: ProviderWire, **kw: Any) -> list[bytes]:
    """A whole well-formed stream's parts in ``wire`` (usage counts from ``kw``)."""
    if wire == "openai":
        return [*_data(_chunks(**kw)), b"data: [DONE]\n\n"]
    events = _events(**kw)
    return _frames(events) if wire == "bedrock" else _sse(events)


def _head(wire: ProviderWire) -> list[bytes]:
    """The first parts of a well-formed stream: the start and a first text delta."""
    if wire == "openai":
        return _data(_chunks()[:2])
    events = _events()[:3]
    return _frames(events) if wire == "bedrock" else _sse(events)


def _whole_json(wire: ProviderWire) -> bytes:
    return _dumps(_completion() if wire == "openai" else _message()).encode()


# -- the faults --------------------------------------------------------------------------------
def mid_close(wire: ProviderWire, stream: bool) -> Reply:
    """The connection drops after a first part: a stream's start and first delta, or half
    of a JSON body (its ``content-length`` promised all of it)."""
    if stream:
        return _stream(wire, _head(wire), drop_after=True)
    body = _whole_json(wire)
    headers = {**_JSON, "content-length": str(len(body))}
    return Reply(headers=headers, events=(body[: len(body) // 2],), drop_after=True)


def garbage_bytes(wire: ProviderWire, stream: bool) -> Reply:
    """After the stream's first event, bytes that are no SSE (no ``field:`` lines) or no
    event-stream frame; then the body ends."""
    assert stream
    junk = b"\x00\x00garbage, not a server-sent event\n<html>oops</html>\n\n"
    if wire == "bedrock":
        junk = b"garbage, not an event-stream frame" * 2
    return _stream(wire, [*_head(wire)[:1], junk])


def garbage_data(wire: ProviderWire, stream: bool) -> Reply:
    """A whole stream but for one event in the middle whose data is not JSON."""
    assert stream
    parts = _whole_stream(wire)
    if wire == "openai":
        bad = b"data: {oops, not json\n\n"
    elif wire == "bedrock":
        bad = _frame_with_bytes(b"{oops, not json")
    else:
        bad = b"event: content_block_delta\ndata: {oops, not json\n\n"
    return _stream(wire, [*parts[:2], bad, *parts[2:]])


def never_ending(wire: ProviderWire, stream: bool) -> Reply:
    """After the first event, one event that never completes: more bytes than
    ``server.max_sse_event_mb`` allows and no blank line, the connection kept open. On
    Bedrock, a frame that declares more bytes than such an event can need, half sent."""
    assert stream
    head = _head(wire)[:1]
    if wire == "bedrock":
        prelude = struct.pack("!II", ENDLESS_FRAME_BYTES, 0)
        prelude += struct.pack("!I", zlib.crc32(prelude))
        endless = [prelude, *[b"x" * 16384] * (ENDLESS_BYTES // 16384)]
    else:
        start = b"data: " if wire == "openai" else b"event: content_block_delta\ndata: "
        endless = [start, *[b"x" * 16384] * (ENDLESS_BYTES // 16384)]
    return _stream(wire, [*head, *endless], hang_after=True)


def trickle(wire: ProviderWire, stream: bool) -> Reply:
    """A well-formed answer, one byte every ``TRICKLE_EVERY_S`` seconds: each read is
    quick, the whole never arrives in time."""
    body = b"".join(_whole_stream(wire)) if stream else _whole_json(wire)
    parts = tuple(body[i : i + 1] for i in range(len(body)))
    headers = (_EVENTSTREAM if wire == "bedrock" else _SSE) if stream else _JSON
    return Reply(headers=headers, events=parts, delay_s=TRICKLE_EVERY_S)


def wrong_shape(wire: ProviderWire, stream: bool) -> Reply:
    """JSON of the wrong shape: ``content`` that is not a list, ``choices`` that is not a
    list; in a stream, a ``content_block_delta`` without its ``index``, a chunk whose
    ``choices`` is not a list."""
    if not stream:
        if wire == "openai":
            return json_reply(_completion(choices={"0": "Hello"}))
        return json_reply(_message(content="Hello"))
    if wire == "openai":
        chunks = _chunks()
        chunks[1] = {**chunks[1], "choices": "Hello"}
        return _stream(wire, [*_data(chunks), b"data: [DONE]\n\n"])
    events = _events()
    delta = dict(events[2])
    del delta["index"]
    events[2] = delta
    return _stream(wire, _frames(events) if wire == "bedrock" else _sse(events))


def non_json_200(wire: ProviderWire, stream: bool) -> Reply:
    """A 200 that is an HTML page (a proxy's maintenance page), to a JSON or a stream
    request."""
    return Reply(headers={"content-type": "text/html; charset=utf-8"}, body=_HTML)


def negative_usage(wire: ProviderWire, stream: bool) -> Reply:
    """A well-formed answer whose token counts are negative (Bedrock's invocation metrics
    too)."""
    counts = (-INPUT_TOKENS, -OUTPUT_TOKENS)
    if stream:
        if wire == "openai":
            parts = _whole_stream(wire, prompt_tokens=counts[0], completion_tokens=counts[1])
        else:
            parts = _whole_stream(wire, input_tokens=counts[0], output_tokens=counts[1])
        return _stream(wire, parts)
    if wire == "openai":
        return json_reply(_completion(prompt_tokens=counts[0], completion_tokens=counts[1]))
    return json_reply(_message(input_tokens=counts[0], output_tokens=counts[1]))


def _frame_with_bytes(event_json: bytes) -> bytes:
    """A Bedrock ``chunk`` frame whose base64 ``bytes`` hold ``event_json`` as it is."""
    payload = _dumps({"bytes": base64.b64encode(event_json).decode(), "p": "abc"}).encode()
    hdrs = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return eventstream_frame(hdrs, payload)


def in_one_read(reply: Reply) -> Reply:
    """``reply`` with all its parts in one write, so that the gateway reads the fault
    together with the events before it."""
    return dataclasses.replace(reply, events=(b"".join(reply.events or ()),), delay_s=0.0)


Fault = Callable[[ProviderWire, bool], Reply]

#: Every fault, by the name the matrix and ``docs/faults.md`` use.
FAULTS: dict[str, Fault] = {
    "mid_close": mid_close,
    "garbage_bytes": garbage_bytes,
    "garbage_data": garbage_data,
    "never_ending": never_ending,
    "trickle": trickle,
    "wrong_shape": wrong_shape,
    "non_json_200": non_json_200,
    "negative_usage": negative_usage,
}
#: The faults a JSON answer can have (the others are faults of a stream's framing).
JSON_FAULTS = ("mid_close", "trickle", "wrong_shape", "non_json_200", "negative_usage")
STREAM_FAULTS = tuple(FAULTS)
