"""What a traced passthrough stream's answer said (``obs/trace_answer.py``): the reader
searches its two windows for the few events the spans need instead of parsing every
event, and finds exactly what parsing every event finds.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.core.sse import SSEDecoder
from llmrelay.obs.trace_answer import Answer, AnswerReader, _note

WIRE = Path(__file__).parent.parent / "wire"


def _every_event(reader: AnswerReader) -> Answer:
    """The reading before the search: every event of both windows parsed and noted."""
    answer = Answer()
    windows = [b"".join(reader._head)]
    if reader._tail:
        windows.append(b"".join(reader._tail))
    for window in windows:
        for ev in SSEDecoder().feed(window):
            try:
                obj = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                _note(obj, answer)
    return answer


def _read(surface: str, raw: bytes, size: int) -> tuple[Answer, Answer]:
    reader = AnswerReader(None, surface, 0)  # type: ignore[arg-type]
    for at in range(0, len(raw), size):
        reader.chunk(raw[at : at + size])
    return reader.read(), _every_event(reader)


def _long_anthropic(deltas: int, reason: str = "end_turn") -> bytes:
    """A stream long enough to have a tail window, with text, tool input and thinking."""
    start = {
        "type": "message_start",
        "message": {"id": "msg_long", "type": "message", "model": "claude-x", "content": []},
    }
    out = [b"event: message_start\ndata: " + orjson.dumps(start) + b"\n\n"]
    kinds = [
        ("text_delta", "text", "a message, said "),
        ("input_json_delta", "partial_json", '{"message": "x"'),
        ("thinking_delta", "thinking", 'the "finish_reason":"stop" '),
    ]
    for i in range(deltas):
        kind, key, text = kinds[i % 3]
        delta = {"type": "content_block_delta", "index": i % 3, "delta": {"type": kind, key: text}}
        out.append(b"event: content_block_delta\ndata: " + orjson.dumps(delta) + b"\n\n")
    end = {"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": 9}}
    out.append(b"event: message_delta\ndata: " + orjson.dumps(end) + b"\n\n")
    out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    return b"".join(out)


def _long_openai(chunks: int, choices: int = 1, spaced: bool = False) -> bytes:
    out = []
    for i in range(chunks + 1):
        last = i == chunks
        body = {
            "id": "chatcmpl-long",
            "object": "chat.completion.chunk",
            "model": "gpt-x",
            "choices": [
                {
                    "index": c,
                    "delta": {} if last else {"content": f"piece {i}"},
                    "finish_reason": ("length" if c else "stop") if last else None,
                }
                for c in range(choices)
            ],
        }
        data = orjson.dumps(body)
        if spaced:
            data = data.replace(b'":', b'": ')
        out.append(b"data: " + data + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


STREAMS = {
    "anthropic text": ("anthropic", (WIRE / "anthropic/text_stream.sse").read_bytes()),
    "anthropic tools": ("anthropic", (WIRE / "anthropic/tool_use_stream.sse").read_bytes()),
    "anthropic thinking": ("anthropic", (WIRE / "anthropic/thinking_stream.sse").read_bytes()),
    "anthropic error": ("anthropic", (WIRE / "anthropic/error_midstream.sse").read_bytes()),
    "anthropic long": ("anthropic", _long_anthropic(200)),
    "anthropic cut": ("anthropic", _long_anthropic(200)[:-700]),
    "openai text": ("openai", (WIRE / "openai/text_stream.sse").read_bytes()),
    "openai tools": ("openai", (WIRE / "openai/tool_calls_stream.sse").read_bytes()),
    "openai reasoning": ("openai", (WIRE / "openai/reasoning_stream.sse").read_bytes()),
    "openai length": ("openai", (WIRE / "openai/length_stream.sse").read_bytes()),
    "openai long": ("openai", _long_openai(120)),
    "openai two choices": ("openai", _long_openai(120, choices=2)),
    "openai spaced": ("openai", _long_openai(120, spaced=True)),
}


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("size", [1, 7, 100, 1000, 1 << 20])
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_searching_the_windows_finds_what_parsing_every_event_does(
    name: str, size: int, crlf: bool
) -> None:
    surface, raw = STREAMS[name]
    if crlf:
        raw = raw.replace(b"\n", b"\r\n")
    searched, parsed = _read(surface, raw, size)
    assert searched == parsed
    if not name.endswith(("cut", "error")) and size > 1:
        assert searched.id is not None and searched.finish_reasons


def test_a_long_streams_finish_reason_comes_from_its_tail() -> None:
    answer, _ = _read("anthropic", _long_anthropic(300, "max_tokens"), 50)
    assert (answer.id, answer.model, answer.finish_reasons) == (
        "msg_long",
        "claude-x",
        {0: "max_tokens"},
    )
    answer, _ = _read("openai", _long_openai(300, choices=2), 50)
    assert answer.finish_reasons == {0: "stop", 1: "length"}


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(STREAMS)),
    cuts=st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=40),
    trim=st.integers(min_value=0, max_value=400),
)
def test_any_chunking_and_any_cut_reads_the_same(name: str, cuts: list[int], trim: int) -> None:
    surface, raw = STREAMS[name]
    raw = raw[: len(raw) - trim]
    reader = AnswerReader(None, surface, 0)  # type: ignore[arg-type]
    at = 0
    for size in cuts * (len(raw) // sum(cuts) + 1):
        if at >= len(raw):
            break
        reader.chunk(raw[at : at + size])
        at += size
    assert reader.read() == _every_event(reader)
