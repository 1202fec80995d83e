"""Price lookup by provider model id, and cost arithmetic."""

from __future__ import annotations

import pytest

from llmrelay.policy.prices import BEDROCK_PROFILE_MULTIPLIERS, SHIPPED_PRICES
from llmrelay.policy.pricing import Price, PriceTable, cost, to_micro_usd, worst_case

SONNET = SHIPPED_PRICES["claude-sonnet-4-5"]


@pytest.mark.parametrize(
    ("provider_model", "key"),
    [
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),  # Anthropic, dated
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-20250514", "claude-opus-4"),  # not taken for Opus 4.1
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),  # Bedrock
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("claude-sonnet-4-6@20250929", "claude-sonnet-4-6"),  # Vertex
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
        ("gpt-4o-2024-08-06", "gpt-4o"),  # OpenAI, dated
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # a snapshot priced on its own
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("GPT-4o-mini", "gpt-4o-mini"),
    ],
)
def test_provider_model_ids_find_their_price(provider_model: str, key: str) -> None:
    assert PriceTable().get(provider_model) is SHIPPED_PRICES[key]


@pytest.mark.parametrize(
    "provider_model",
    [
        "gpt4o-deployment",  # an Azure deployment name: priced only when exact
        "my-gpt-4o",
        "claude-sonnet-4-5-v1:0",  # a Bedrock suffix without the Bedrock prefix
        "claude-sonnet",
        "o3",
        "",
    ],
)
def test_unknown_ids_have_no_price(provider_model: str) -> None:
    assert PriceTable().get(provider_model) is None


@pytest.mark.parametrize(
    ("provider_model", "key", "factor"),
    [
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", 1.0),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", 1.1),
        ("eu.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5", 1.1),
        ("apac.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5", 1.1),
        ("jp.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6", 1.1),
        ("au.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", 1.1),
        ("anthropic.claude-sonnet-4-6-v1:0", "claude-sonnet-4-6", 1.1),  # in-region
        ("ca.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", 1.1),  # later geo
        # Before Sonnet 4.5 no profile costs more than another.
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", 1.0),
        ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet", 1.0),
    ],
)
def test_bedrock_profile_prefix_prices(provider_model: str, key: str, factor: float) -> None:
    base = SHIPPED_PRICES[key]
    got = PriceTable().get(provider_model)
    assert got is not None
    assert got.input == pytest.approx(base.input * factor)
    assert got.output == pytest.approx(base.output * factor)
    assert got.cache_write == pytest.approx(base.cache_write * factor)
    assert got.cache_read == pytest.approx(base.cache_read * factor)


def test_every_named_bedrock_prefix_has_a_multiplier() -> None:
    assert set(BEDROCK_PROFILE_MULTIPLIERS) == {"global", "us", "eu", "apac", "jp", "au", ""}
    assert BEDROCK_PROFILE_MULTIPLIERS["global"] == 1.0
    assert PriceTable().get("us.anthropic.claude-sonnet-4-5-v1:0") == Price(3.3, 16.5, 4.125, 0.33)


def test_overrides_win_and_name_azure_deployments_exactly() -> None:
    mine = Price(1.0, 2.0, 1.0, 0.5)
    table = PriceTable({"gpt4o-deployment": mine, "claude-sonnet-4-5": mine})
    assert table.get("gpt4o-deployment") is mine
    assert table.get("us.anthropic.claude-sonnet-4-5-20250929-v1:0") is mine
    assert table.get("claude-sonnet-4-6") is SHIPPED_PRICES["claude-sonnet-4-6"]
    # An override of a dated id beats the undated shipped price.
    dated = PriceTable({"gpt-4o-2024-11-20": mine})
    assert dated.get("gpt-4o-2024-11-20") is mine
    assert dated.get("gpt-4o-2024-08-06") is SHIPPED_PRICES["gpt-4o"]


def test_cost_prices_each_token_kind_separately() -> None:
    # Anthropic's input_tokens excludes cache reads and writes: four kinds, four prices.
    usd = cost(
        SONNET,
        input_tokens=1_000,
        output_tokens=500,
        cache_creation_input_tokens=10_000,
        cache_read_input_tokens=100_000,
    )
    assert usd == pytest.approx((1_000 * 3 + 500 * 15 + 10_000 * 3.75 + 100_000 * 0.30) / 1e6)
    assert usd == pytest.approx(0.078)
    assert cost(SONNET, 1_000_000, 0) == pytest.approx(3.0)
    assert cost(SONNET, 0, 1_000_000) == pytest.approx(15.0)
    assert cost(SONNET, 0, 0, 1_000_000, 0) == pytest.approx(3.75)
    assert cost(SONNET, 0, 0, 0, 1_000_000) == pytest.approx(0.30)
    assert cost(SONNET, 0, 0) == 0.0


def test_openai_cached_input_is_billed_at_the_cached_price() -> None:
    # Canonical usage for OpenAI: prompt_tokens 10_000 with cached_tokens 8_000 becomes
    # input_tokens 2_000 and cache_read_input_tokens 8_000.
    gpt4o = SHIPPED_PRICES["gpt-4o"]
    usd = cost(gpt4o, 2_000, 300, 0, 8_000)
    assert usd == pytest.approx((2_000 * 2.5 + 300 * 10 + 8_000 * 1.25) / 1e6)


def test_worst_case_takes_every_input_token_at_the_dearer_price() -> None:
    # A prompt may be written to the cache (1.25x input) and max_tokens may all be used.
    assert worst_case(SONNET, 10_000, 4_096) == pytest.approx((10_000 * 3.75 + 4_096 * 15) / 1e6)
    gpt = SHIPPED_PRICES["gpt-4.1"]
    assert worst_case(gpt, 10_000, 1_000) == pytest.approx((10_000 * 2 + 1_000 * 8) / 1e6)
    assert worst_case(SONNET, 10_000, 4_096) >= cost(SONNET, 0, 4_096, 10_000, 0)


def test_to_micro_usd_rounds_fractions_up_and_float_noise_away() -> None:
    assert to_micro_usd(0.0) == 0
    assert to_micro_usd(3e-6) == 3
    assert to_micro_usd(1.5e-6) == 2
    assert to_micro_usd(0.078) == 78_000
    assert to_micro_usd(cost(SONNET, 1, 0)) == 3


def test_prices_are_not_negative() -> None:
    with pytest.raises(ValueError):
        Price(1.0, -1.0, 1.0, 0.1)


def test_shipped_prices_are_consistent() -> None:
    for key, price in SHIPPED_PRICES.items():
        assert key == key.lower()
        assert price.cache_read <= price.input <= price.cache_write, key
        assert price.output >= price.input, key
