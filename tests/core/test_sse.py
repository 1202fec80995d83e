"""The SSE decoder: the same events however the bytes are cut, bounded memory for an event
that never ends, and work linear in the bytes fed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.core.sse import SSEDecoder, SSEEvent, SSEEventTooLarge, encode_event, parse_block
from llmrelay.core.wirejson import loads
from llmrelay.errors import UpstreamProtocolError

WIRE = Path(__file__).parent.parent / "wire"
MiB = 1024 * 1024


def feed_all(chunks: list[bytes], **kw: int) -> list[bytes]:
    """Every block of a whole stream (the decoder's ``finish`` included: an oversized event
    found in a chunk that also completed others is raised there)."""
    decoder = SSEDecoder(**kw)
    blocks = [block for chunk in chunks for block in decoder.blocks(chunk)]
    decoder.finish()
    return blocks


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    points = sorted({p % (len(raw) + 1) for p in points})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


# -- an event that never ends --------------------------------------------------------


def test_never_ending_event_is_an_error_once_past_the_bound() -> None:
    decoder = SSEDecoder()
    piece = b"x" * 1023 + b"\n"  # lines, but never a blank one
    fed = 0
    with pytest.raises(SSEEventTooLarge) as info:
        while fed < 20 * MiB:
            fed += len(piece)
            decoder.feed(piece)
            assert decoder.buffered <= 8 * MiB + 1
    assert 8 * MiB < fed <= 8 * MiB + len(piece)
    assert isinstance(info.value, UpstreamProtocolError) and info.value.status == 502
    assert str(info.value) == (
        "provider sent an SSE event larger than 8 MiB (server.max_sse_event_mb)"
    )
    assert decoder.buffered == 0  # the memory is released at once
    named = info.value.for_account("acme")
    assert str(named).startswith("provider 'acme' sent an SSE event larger than 8 MiB")


def test_an_event_over_the_bound_in_one_chunk_is_an_error() -> None:
    event = b"data: " + b"x" * 100 + b"\n\n"
    assert feed_all([event * 3], max_event_bytes=106) == [event[:-2]] * 3
    with pytest.raises(SSEEventTooLarge, match="larger than 105 bytes"):
        feed_all([event * 3], max_event_bytes=105)
    with pytest.raises(SSEEventTooLarge):
        feed_all([event[:50], event[50:]], max_event_bytes=105)


def test_an_event_exactly_at_the_bound_passes_however_it_is_cut() -> None:
    event = b"data: " + b"y" * 94 + b"\n\n"  # a 100-byte block
    for i in range(len(event) + 1):
        assert feed_all([event[:i], event[i:]], max_event_bytes=100) == [event[:-2]]


@contextmanager
def bytes_scanned() -> Iterator[list[int]]:
    """Counts the bytes that bytes/bytearray search methods are called on, whoever calls
    them: a decoder that re-searches what it holds shows up here, whatever the clock says."""
    total = [0]
    names = {"find", "index", "replace", "count", "split", "partition", "startswith"}

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") in names:
            owner = getattr(arg, "__self__", None)
            if isinstance(owner, (bytes, bytearray)):
                total[0] += len(owner)

    sys.setprofile(profile)
    try:
        yield total
    finally:
        sys.setprofile(None)


def test_a_long_event_in_small_chunks_is_searched_once() -> None:
    decoder = SSEDecoder()
    piece = b"data: " + b"z" * 1017 + b"\n"
    n = 2048  # a 2 MiB event in 1 KiB chunks
    with bytes_scanned() as scanned:
        for _ in range(n):
            assert decoder.blocks(piece) == []
        blocks = decoder.blocks(b"\n")
    assert len(blocks) == 1 and len(blocks[0]) == n * len(piece) - 1
    # Each chunk is searched for "\r" and for the blank line, and the last search runs on
    # the whole event (counted whole here, though it starts at its end): 3 bytes per byte
    # fed. Re-searching the held bytes on every chunk would be about n / 2 times that.
    assert scanned[0] <= 4 * n * len(piece)


# -- framing ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["text_stream.sse", "thinking_stream.sse"])
@pytest.mark.parametrize("crlf", [False, True])
def test_fixture_streams_decode_the_same_in_any_chunk_size(name: str, crlf: bool) -> None:
    raw = (WIRE / "anthropic" / name).read_bytes().rstrip(b"\n") + b"\n\n"
    if crlf:
        raw = raw.replace(b"\n", b"\r\n")
    whole = SSEDecoder().feed(raw)
    assert whole[0].event == "message_start" and whole[-1].event == "message_stop"
    for event in whole:
        assert loads(event.data)["type"] == event.event
    for size in (1, 2, 3, 7, 64, 1000):
        decoder = SSEDecoder()
        chunked = [e for i in range(0, len(raw), size) for e in decoder.feed(raw[i : i + size])]
        assert chunked == whole


def test_crlf_split_between_chunks() -> None:
    assert feed_all([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]) == [b"data: a", b"data: b"]
    assert feed_all([b"data: a\r\n\r", b"", b"\n"]) == [b"data: a"]


def test_blank_line_split_between_chunks() -> None:
    assert feed_all([b"data: a\n", b"\ndata: b\n", b"\n"]) == [b"data: a", b"data: b"]
    assert feed_all([b"data: a\n", b"\n\n", b"\ndata: b\n\n"]) == [b"data: a", b"", b"data: b"]


def test_parse_block() -> None:
    assert parse_block(b": keep-alive") is None
    assert parse_block(b"event: ping\ndata: {}") == SSEEvent("ping", b"{}")
    assert parse_block(b"data: a\ndata:b") == SSEEvent(None, b"a\nb")


def test_encode_event_keeps_lone_surrogates_as_escapes() -> None:
    raw = encode_event("content_block_delta", {"text": "a\ud800b"})
    raw.decode("utf-8")  # valid UTF-8 on the wire
    (event,) = SSEDecoder().feed(raw)
    assert loads(event.data) == {"text": "a\ud800b"}


# -- properties ------------------------------------------------------------------------

_line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=12,
)
_event = st.tuples(
    st.one_of(st.none(), st.sampled_from(["message_start", "content_block_delta", "ping"])),
    st.lists(_line_text, min_size=1, max_size=3),
    st.booleans(),  # a comment line first
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_event, max_size=6),
    crlf=st.booleans(),
    points=st.lists(st.integers(min_value=0), max_size=12),
)
def test_any_chunking_of_a_valid_stream_yields_the_same_events(
    events: list[tuple[str | None, list[str], bool]], crlf: bool, points: list[int]
) -> None:
    nl = "\r\n" if crlf else "\n"
    text = ""
    expected = []
    for name, lines, comment in events:
        if comment:
            text += ": keep-alive" + nl
        if name is not None:
            text += f"event: {name}{nl}"
        text += "".join(f"data: {line}{nl}" for line in lines) + nl
        expected.append(SSEEvent(name, "\n".join(lines).encode()))
    raw = text.encode()
    decoder = SSEDecoder()
    got = [e for chunk in cut(raw, points) for e in decoder.feed(chunk)]
    assert got == expected
    assert decoder.buffered == 0


def _onto(alphabet: bytes) -> bytes:
    """A translate table onto a few bytes, so generated bytes are dense in separators."""
    return bytes(alphabet[i % len(alphabet)] for i in range(256))


@settings(max_examples=500, deadline=None)
@given(
    raw=st.binary(max_size=80).map(lambda b: b.translate(_onto(b"\r\n:a"))),
    points=st.lists(st.integers(min_value=0), max_size=10),
)
def test_any_chunking_of_any_bytes_yields_the_same_blocks(raw: bytes, points: list[int]) -> None:
    assert feed_all(cut(raw, points)) == feed_all([raw])


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=60).map(lambda b: b.translate(_onto(b"\n\nab"))),
    points=st.lists(st.integers(min_value=0), max_size=10),
    bound=st.integers(min_value=1, max_value=12),
)
def test_the_bound_does_not_depend_on_chunking(raw: bytes, points: list[int], bound: int) -> None:
    def raises(chunks: list[bytes]) -> bool:
        try:
            feed_all(chunks, max_event_bytes=bound)
        except SSEEventTooLarge:
            return True
        return False

    assert raises(cut(raw, points)) == raises([raw])


def test_blocks_before_an_oversized_event_in_the_same_chunk_come_first() -> None:
    # The events a chunk completed before an oversized one still count (their usage is
    # billed); the error follows on the next call.
    decoder = SSEDecoder(max_event_bytes=40)
    chunk = b"event: message_start\ndata: {}\n\n" + b"data: " + b"x" * 64
    assert decoder.blocks(chunk[:33]) == [b"event: message_start\ndata: {}"]
    decoder = SSEDecoder(max_event_bytes=40)
    assert decoder.blocks(chunk) == [b"event: message_start\ndata: {}"]
    with pytest.raises(SSEEventTooLarge):
        decoder.blocks(b"more")
    with pytest.raises(SSEEventTooLarge):
        decoder.finish()
