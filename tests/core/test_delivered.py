"""What a client that leaves mid-stream is charged: its delivered deltas, counted, never
less than the provider's last count."""

from __future__ import annotations

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
