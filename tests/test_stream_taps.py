"""The usage taps read the same usage however the stream is cut into chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrelay.core.usage import Usage
from llmrelay.core.wirejson import loads
from llmrelay.surfaces.anthropic_stream import AnthropicStreamTap
from llmrelay.surfaces.openai_stream import OpenAIStreamTap

WIRE = Path(__file__).parent / "wire"


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("crlf", [False, True])
def test_anthropic_tap_any_chunking(size: int, crlf: bool) -> None:
    raw = (WIRE / "anthropic" / "text_stream.sse").read_bytes()
    if crlf:
        raw = raw.replace(b"\n", b"\r\n")
    usage = Usage()
    tap = AnthropicStreamTap(usage)
    for i in range(0, len(raw), size):
        tap.observe(raw[i : i + size])
    assert (
        usage.input_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
        usage.output_tokens,
    ) == (25, 7, 11, 15)
    assert tap.error_type is None


def test_anthropic_tap_error_event() -> None:
    usage = Usage()
    tap = AnthropicStreamTap(usage)
    # The fixture file ends after the last line; on the wire a blank line ends the event.
    tap.observe((WIRE / "anthropic" / "error_midstream.sse").read_bytes().rstrip(b"\n") + b"\n\n")
    assert tap.error_type == "overloaded_error"


@pytest.mark.parametrize("size", [1, 13, 100_000])
def test_openai_tap_strips_only_the_usage_chunk(size: int) -> None:
    raw = (WIRE / "openai" / "text_stream.sse").read_bytes()
    usage = Usage()
    tap = OpenAIStreamTap(usage, strip_usage=True)
    out = b"".join(tap.filter(raw[i : i + size]) for i in range(0, len(raw), size))
    assert b'"choices":[]' not in out
    assert out.endswith(b"data: [DONE]\n\n")
    assert usage.output_tokens > 0 and usage.input_tokens + usage.cache_read_input_tokens > 0


def test_long_digit_runs_keep_exact_integers() -> None:
    assert loads(b'{"a": 123456789012345678901234567890}') == {"a": 123456789012345678901234567890}
    assert loads(b'{"a": "0123456789012345678901234", "b": 1.5}') == {
        "a": "0123456789012345678901234",
        "b": 1.5,
    }


def test_bedrock_invocation_metrics_fill_missing_counts() -> None:
    stream = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":'
        b'"message","role":"assistant","model":"x","content":[],"stop_reason":null,'
        b'"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop","amazon-bedrock-invocationMetrics":'
        b'{"inputTokenCount":41,"outputTokenCount":17,"invocationLatency":90,'
        b'"firstByteLatency":30,"cacheReadInputTokenCount":5}}\n\n'
    )
    usage = Usage()
    AnthropicStreamTap(usage).observe(stream)
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (41, 17, 5)


def test_negative_bedrock_invocation_metrics_read_as_zero() -> None:
    # A negative count would make the call's cost negative and credit its budget.
    stream = (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        b'{"input_tokens":-7,"output_tokens":-1}}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop","amazon-bedrock-invocationMetrics":'
        b'{"inputTokenCount":-7,"outputTokenCount":-3,"cacheReadInputTokenCount":-2}}\n\n'
    )
    usage = Usage()
    AnthropicStreamTap(usage).observe(stream)
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (0, 0, 0)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("cut", [0, 1, 40, 200])
def test_taps_send_whole_events_only(size: int, crlf: bool, cut: int) -> None:
    # The stream ends ``cut`` bytes into an event that never completes: the client gets the
    # whole events before it, byte for byte, and nothing of the partial one.
    whole = (WIRE / "anthropic" / "text_stream.sse").read_bytes()
    whole = whole.rstrip(b"\n") + b"\n\n"
    partial = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0}'[:cut]
    if crlf:
        whole, partial = whole.replace(b"\n", b"\r\n"), partial.replace(b"\n", b"\r\n")
    raw = whole + partial
    taps = [
        AnthropicStreamTap(Usage()),
        OpenAIStreamTap(Usage(), strip_usage=False),
    ]
    for tap in taps:
        out = b"".join(tap.filter(raw[i : i + size]) for i in range(0, len(raw), size))
        assert out == whole


@pytest.mark.parametrize("size", [1, 7, 100_000])
def test_anthropic_tap_counts_the_deltas_it_saw_go_out(size: int) -> None:
    raw = (WIRE / "anthropic" / "text_stream.sse").read_bytes()
    tap = AnthropicStreamTap(Usage())
    for i in range(0, len(raw), size):
        tap.observe(raw[i : i + size])
    # "Hello", ", world", "! How can", " I help today?": 1 + 1 + 2 + 3 estimated tokens.
    assert (tap.delivered.deltas, tap.delivered.estimated) == (4, 7)
    assert tap.delivered.reported == 15  # message_delta's, not message_start's placeholder


@pytest.mark.parametrize("size", [1, 13, 100_000])
def test_openai_tap_counts_a_chunks_deltas_once_it_went_out(size: int) -> None:
    raw = (WIRE / "openai" / "text_stream.sse").read_bytes()
    tap = OpenAIStreamTap(Usage(), strip_usage=True)
    for i in range(0, len(raw), size):
        tap.filter(raw[i : i + size])  # as the relay does: filter, write, then observe
        tap.observe(raw[i : i + size])
    # The role-only first delta carries no text; four content deltas do.
    assert tap.delivered.deltas == 4 and tap.delivered.reported == 15
    # A chunk read but never written (the client left during the write) is not counted.
    unsent = OpenAIStreamTap(Usage(), strip_usage=False)
    unsent.filter(raw)
    assert unsent.delivered.deltas == 0
