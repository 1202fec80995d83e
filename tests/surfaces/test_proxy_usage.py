"""Reading usage out of passthrough answers: JSON, event streams, batch results, caps."""

from __future__ import annotations

import json

from llmrelay.core.delivered import text_tokens
from llmrelay.surfaces.proxy_usage import (
    MAX_JSON_BYTES,
    MAX_LINE_BYTES,
    UsageReader,
    batch_results_path,
    usage_of,
)


def _read(kind: str, chunks: list[bytes], batch: bool = False) -> UsageReader:
    reader = UsageReader.for_answer(kind, batch)
    assert reader is not None
    for c in chunks:
        reader.feed(c)
    reader.finish()
    return reader


def test_the_three_usage_shapes() -> None:
    anthropic = usage_of({"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 2})
    assert anthropic is not None
    assert (anthropic.input_tokens, anthropic.output_tokens) == (5, 7)
    assert anthropic.cache_read_input_tokens == 2
    chat = usage_of(
        {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}
    )
    assert chat is not None
    assert (chat.input_tokens, chat.output_tokens, chat.cache_read_input_tokens) == (6, 3, 4)
    responses = usage_of(
        {"input_tokens": 9, "output_tokens": 1, "input_tokens_details": {"cached_tokens": 9}}
    )
    assert responses is not None
    assert (responses.input_tokens, responses.cache_read_input_tokens) == (0, 9)
    assert usage_of({"total": 3}) is None


def test_a_json_answer_split_across_chunks() -> None:
    body = json.dumps({"model": "m", "usage": {"input_tokens": 11, "output_tokens": 4}}).encode()
    reader = _read("application/json", [body[:7], body[7:]])
    assert list(reader.by_model) == ["m"]
    assert reader.by_model["m"].input_tokens == 11


def test_a_json_answer_without_usage_reads_nothing() -> None:
    assert _read("application/json", [b'{"data": [], "has_more": false}']).by_model == {}
    assert UsageReader.for_answer("application/octet-stream", False) is None


def test_a_json_answer_over_the_cap_is_not_read() -> None:
    body = b'{"usage": {"input_tokens": 1}, "pad": "' + b"x" * MAX_JSON_BYTES + b'"}'
    assert _read("application/json", [body]).by_model == {}


def test_an_anthropic_stream_takes_the_latest_cumulative_counts() -> None:
    start = {
        "type": "message_start",
        "message": {"model": "m", "usage": {"input_tokens": 20, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "usage": {"output_tokens": 9}}
    raw = (
        f"event: message_start\r\ndata: {json.dumps(start)}\r\n\r\n"
        f"event: message_delta\ndata: {json.dumps(delta)}\n\n"
    ).encode()
    reader = _read("text/event-stream", [raw[:30], raw[30:]])
    assert (reader.by_model["m"].input_tokens, reader.by_model["m"].output_tokens) == (20, 9)


def test_an_openai_stream_reads_the_usage_chunk() -> None:
    chunk = {"model": "gpt", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    raw = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    reader = _read("text/event-stream", [raw])
    assert reader.by_model["gpt"].output_tokens == 2


def test_batch_results_sum_succeeded_results_per_model() -> None:
    def line(custom_id: str, model: str, kind: str = "succeeded") -> bytes:
        message = {"model": model, "usage": {"input_tokens": 100, "output_tokens": 10}}
        result = {"type": kind, "message": message} if kind == "succeeded" else {"type": kind}
        return json.dumps({"custom_id": custom_id, "result": result}).encode() + b"\n"

    data = line("a", "m1") + line("b", "m2") + line("c", "m1") + line("d", "m1", "errored")
    reader = _read("application/binary", [data[:50], data[50:]], batch=True)
    assert reader.by_model["m1"].input_tokens == 200
    assert reader.by_model["m2"].output_tokens == 10


def test_a_batch_line_over_the_cap_is_skipped_and_the_next_read() -> None:
    big = b'{"pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n'
    ok = {
        "custom_id": "a",
        "result": {"type": "succeeded", "message": {"model": "m", "usage": {"input_tokens": 1}}},
    }
    reader = _read(
        "application/binary",
        [big[: MAX_LINE_BYTES + 5], big[MAX_LINE_BYTES + 5 :], json.dumps(ok).encode()],
        batch=True,
    )
    assert reader.by_model["m"].input_tokens == 1


def test_results_paths() -> None:
    assert batch_results_path("v1/messages/batches/msgbatch_1/results")
    assert not batch_results_path("v1/messages/batches/msgbatch_1")
    assert not batch_results_path("v1/messages/batches//results")


def test_crlf_events_fed_byte_by_byte() -> None:
    start = {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 4}}}
    delta = {"type": "message_delta", "usage": {"output_tokens": 6}}
    raw = (
        f"event: message_start\r\ndata: {json.dumps(start)}\r\n\r\n"
        f"event: message_delta\r\ndata: {json.dumps(delta)}\r\n\r\n"
    ).encode()
    reader = _read("text/event-stream", [raw[i : i + 1] for i in range(len(raw))])
    assert (reader.by_model["m"].input_tokens, reader.by_model["m"].output_tokens) == (4, 6)


def test_stream_deltas_are_counted_and_the_last_event_noted() -> None:
    """Delivered deltas of the three stream wires; the end event of each sets ``ended``."""
    anthropic = [
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"tok "}}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":3}}\n\n',
    ]
    reader = _read("text/event-stream", anthropic)
    assert (reader.delivered.deltas, reader.delivered.output_tokens()) == (1, 3)
    assert not reader.ended
    assert _read("text/event-stream", [*anthropic, b'data: {"type":"message_stop"}\n\n']).ended
    delta = {"content": "abcdefgh", "tool_calls": [{"function": {"arguments": "{}"}}]}
    chat = b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode() + b"\n\n"
    reader = _read("text/event-stream", [chat, b"data: [DONE]\n\n"])
    assert (reader.delivered.deltas, reader.delivered.estimated, reader.ended) == (2, 3, True)
    responses = [
        b'data: {"type":"response.output_text.delta","delta":"word"}\n\n',
        b'data: {"type":"response.completed","response":{"model":"gpt-x","usage":'
        b'{"input_tokens":4,"output_tokens":9}}}\n\n',
    ]
    reader = _read("text/event-stream", responses)
    assert (reader.delivered.deltas, reader.delivered.reported, reader.ended) == (1, 9, True)
    assert reader.by_model["gpt-x"].output_tokens == 9


def test_deltas_read_without_a_parse_count_as_their_text() -> None:
    """Anthropic deltas and Chat Completions content chunks are counted from their bytes;
    a text with escapes or other than ASCII counts as its decoded text does, and a delta
    of another shape (a field after the text, a signature) as the parse reads it."""
    texts = ["tok ", "", "a\nb", 'say "hi"', "back\\slash", "é ü 日本", "\u2028"]
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    anthropic = [
        b"event: message_start\ndata: "
        + json.dumps({"type": "message_start", "message": {"model": "m"}}).encode()
        + b"\n\n"
    ]
    chat = []
    for text in texts:
        for kind, key in (("text_delta", "text"), ("thinking_delta", "thinking")):
            delta = {"type": "content_block_delta", "delta": {"type": kind, key: text}}
            anthropic.append(
                b"event: content_block_delta\ndata: " + json.dumps(delta, **compact).encode()
            )
        chunk = {"model": "gpt-x", "choices": [{"index": 0, "delta": {"content": text}}]}
        chat.append(b"data: " + json.dumps(chunk, **compact).encode())
    signature = {"type": "content_block_delta", "delta": {"type": "signature_delta"}}
    after = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "ab"}, "x": 1}
    anthropic += [
        b"event: content_block_delta\ndata: " + json.dumps(signature).encode(),
        b"event: content_block_delta\ndata: " + json.dumps(after).encode(),
    ]
    reader = _read("text/event-stream", [e + b"\n\n" for e in anthropic])
    expected = sum(text_tokens(t) for t in texts) * 2 + 1
    assert (reader.delivered.deltas, reader.delivered.estimated) == (2 * len(texts) + 1, expected)
    reader = _read("text/event-stream", [e + b"\n\n" for e in chat])
    assert reader.delivered.deltas == len([t for t in texts if t])  # an empty one is no delta
    assert reader.delivered.estimated == sum(text_tokens(t) for t in texts)
