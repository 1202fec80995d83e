"""What a client that leaves mid-stream is charged: its delivered deltas, counted, never
less than the provider's last count."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.core.delivered import Delivered, text_tokens
from llmrelay.core.usage import Usage


def test_the_estimate_is_four_ascii_or_two_other_bytes_a_token_and_one_a_delta() -> None:
    assert text_tokens("") == 0
    assert text_tokens(",") == 1  # a delta is at least one token
    assert text_tokens("tok ") == 1
    assert text_tokens("a" * 40) == 10
    assert text_tokens("日本") == 3  # six UTF-8 bytes / 2
    assert text_tokens("\ud800") == 1  # a lone surrogate costs no exception


def test_disconnect_charges_the_delivered_count_over_message_starts_placeholder() -> None:
    usage = Usage(input_tokens=25, output_tokens=1)  # as message_start left it
    d = Delivered()
    for _ in range(20):
        d.delta("tok ")
    d.settle(usage)
    assert (usage.input_tokens, usage.output_tokens) == (25, 20)
    assert d.note() == (
        "client disconnected after 20 content deltas; output_tokens=20 "
        "(estimated from the delivered text (4 ASCII bytes or 2 other bytes a token))"
    )


def test_never_less_than_the_providers_last_count() -> None:
    d = Delivered()
    d.delta("tok ")
    d.provider_count(30)
    assert d.output_tokens() == 30 and "the provider's own count" in d.note()
    d.provider_count(0)
    assert d.output_tokens() == 1


def test_a_tokenizer_replaces_the_estimate_and_is_named() -> None:
    d = Delivered()
    d.use(lambda text: len(text.split()), "o200k_base")
    d.delta("three small words")
    assert d.output_tokens() == 3
    assert "counted with tiktoken o200k_base" in d.note()


_PLAIN = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='"\\'),
    max_size=40,
)


@settings(deadline=None)  # its first example imports the tap
@given(st.lists(_PLAIN, max_size=20))
def test_the_taps_unparsed_count_equals_the_estimate_of_the_text(texts: list[str]) -> None:
    # The Anthropic tap measures a delta's text as its JSON bytes, without parsing: for
    # text with nothing to escape that is the text's own estimate, delta for delta.
    from llmrelay.surfaces.anthropic_stream import AnthropicStreamTap

    tap = AnthropicStreamTap(Usage())
    exact = Delivered()
    for text in texts:
        event = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        }
        tap.observe(b"event: content_block_delta\ndata: " + orjson.dumps(event) + b"\n\n")
        exact.delta(text)
    assert (tap.delivered.deltas, tap.delivered.estimated) == (exact.deltas, exact.estimated)


def test_an_escape_counts_as_its_two_bytes_and_other_deltas_as_before() -> None:
    from llmrelay.surfaces.anthropic_stream import AnthropicStreamTap

    tap = AnthropicStreamTap(Usage())
    deltas = [
        {"type": "text_delta", "text": "line one\nline two\n"},  # 18 chars, 20 bytes sent
        {"type": "thinking_delta", "thinking": "hmm " * 4},
        {"type": "input_json_delta", "partial_json": '{"city": "Par'},
        {"type": "signature_delta", "signature": "EqQBCgIYAhIM"},  # no generated text
    ]
    for d in deltas:
        event = {"type": "content_block_delta", "index": 0, "delta": d}
        tap.observe(b"event: content_block_delta\ndata: " + orjson.dumps(event) + b"\n\n")
    assert tap.delivered.deltas == 3
    assert tap.delivered.estimated == 20 // 4 + 16 // 4 + len(b'{\\"city\\": \\"Par') // 4


@settings(deadline=None)
@given(st.binary(max_size=64), st.integers(-4, 70), st.integers(-4, 70))
def test_a_span_of_a_delta_counts_as_its_bytes(block: bytes, start: int, end: int) -> None:
    """The tap's inline estimate (``delta_span``) counts what ``delta_bytes`` of the slice
    does, ASCII or not, empty, reversed or out-of-range spans included."""
    by_span, by_bytes = Delivered(), Delivered()
    by_span.delta_span(block, start, end)
    by_bytes.delta_bytes(block[start:end])
    assert (by_span.deltas, by_span.estimated) == (by_bytes.deltas, by_bytes.estimated)
