"""The price table llmrelay ships: USD per million tokens for the models it documents.

Read on 2026-11-30 (stored copies of the pages; standard tier, no batch discount, no
regional premium). Config overrides any entry; a model missing here has no price
(:meth:`~llmrelay.policy.pricing.PriceTable.get` returns None): add it in config rather than
guess.

**Anthropic** — https://platform.claude.com/docs/en/about-claude/pricing ("Model pricing":
base input, 5m cache writes, cache hits and refreshes, output) for Opus 5, Opus 4.8 to 4.5,
Opus 4.1, Opus 4, Sonnet 4, Sonnet 3.7, Sonnet 3.5, Haiku 3.5 and Haiku 3; the model pages
https://platform.claude.com/docs/en/models/<model>/overview for Sonnet 5 (all four prices),
Sonnet 4.6, Sonnet 4.5 and Haiku 4.5 (input and output), whose cache prices follow the
page's prompt-caching multipliers (5-minute write 1.25x, read 0.1x the base input price).
``cache_write`` is the 5-minute write price; 1-hour writes cost 2x input and are priced
low here, since usage does not tell them apart. Left out: models priced in tiers by prompt
length (Claude Haiku 5.5), with a price change whose stored copies disagree (Claude Sonnet
5.5's cache reads), or not documented by llmrelay (Fable, Mythos, Opus 5.5).

**OpenAI** — https://developers.openai.com/api/docs/pricing (input, cached input, output;
OpenAI charges nothing extra to write its cache, so ``cache_write`` is the input price).
The page itself could not be read here: the rates below come from OpenAI's model pages where
stored (https://developers.openai.com/api/docs/models/gpt-5-codex for the GPT-5 rates) and
otherwise from several independent transcriptions of the pricing page that agree. Left out
for lack of agreeing sources: o3 (copies differ on cached input), gpt-5-nano (no cached
input price found) and the GPT-5.x point releases.

Bedrock and Vertex set their own prices (regional endpoints can cost more): their ids get
Anthropic's list prices here unless config overrides them, with one adjustment for Bedrock
inference profiles (:data:`BEDROCK_PROFILE_MULTIPLIERS`, read 2026-12-07):

**Bedrock inference profiles** — a Bedrock model id names how the call is routed by its
prefix: ``global.`` (any commercial region), a geography (``us.``, ``eu.``, ``apac.``,
``jp.``, ``au.``) or none (the source region only). For Claude Sonnet 4.5 and the models
after it (:data:`BEDROCK_REGIONAL_PREMIUM_MODELS`), ``global.`` costs Anthropic's list
price and every geographic or in-region id about 10 % more, on input and output alike (the
cache prices follow input). What was verified: AWS's user guide page "Global cross-Region
inference" (https://docs.aws.amazon.com/bedrock/latest/userguide/global-cross-region-inference.html)
says global cross-Region inference for Claude Sonnet 4.5 "offers approximately 10% savings
on both input and output token pricing compared to geographic cross-Region inference", the
price being that of the source region. What could not be verified against AWS itself: the
pricing page (https://aws.amazon.com/bedrock/pricing/) could not be read here, so the exact
per-region figures, that the 10 % also holds for Haiku 4.5 and Opus 4.5 and later (stated
by a third-party transcription, clauder-navi.com "Bedrock Claude Pricing": "regional priced
10% higher than global" from Sonnet 4.5 / Haiku 4.5 / Opus 4.5 on), and that in-region ids
cost what geographic profiles cost, rest on that transcription. Older models (Sonnet 4,
3.7, Opus 4.1, ...) have no global profile price of their own and keep the list price under
every prefix. Config prices are never adjusted: price a profile id exactly in config
(``pricing: {"us.anthropic.claude-sonnet-4-5-20250929-v1:0": ...}``) to bill what the
account's contract says.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "BATCH_DISCOUNT",
    "BEDROCK_PROFILE_MULTIPLIERS",
    "BEDROCK_REGIONAL_PREMIUM_MODELS",
    "GEOGRAPHIC_MULTIPLIER",
    "SHIPPED_PRICES",
    "Price",
    "bedrock_profile_price",
]


@dataclass(slots=True, frozen=True)
class Price:
    """USD per million tokens: fresh input, output, prompt-cache writes (the default
    5-minute cache; 1-hour writes cost more and are not told apart in usage) and cache
    reads. A provider without a cache-write charge has ``cache_write == input``."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def __post_init__(self) -> None:
        if min(self.input, self.output, self.cache_write, self.cache_read) < 0:
            raise ValueError(f"prices must be >= 0: {self}")


# Anthropic: input, output, 5-minute cache write, cache read.
_OPUS_4_5_ON = Price(5.0, 25.0, 6.25, 0.50)
_OPUS_4_0 = Price(15.0, 75.0, 18.75, 1.50)
_SONNET = Price(3.0, 15.0, 3.75, 0.30)

SHIPPED_PRICES = MappingProxyType(
    {
        "claude-opus-5": _OPUS_4_5_ON,
        "claude-opus-4-8": _OPUS_4_5_ON,
        "claude-opus-4-7": _OPUS_4_5_ON,
        "claude-opus-4-6": _OPUS_4_5_ON,
        "claude-opus-4-5": _OPUS_4_5_ON,
        "claude-opus-4-1": _OPUS_4_0,
        "claude-opus-4": _OPUS_4_0,
        "claude-sonnet-5": Price(2.0, 10.0, 2.50, 0.20),
        "claude-sonnet-4-6": _SONNET,
        "claude-sonnet-4-5": _SONNET,
        "claude-sonnet-4": _SONNET,
        "claude-3-7-sonnet": _SONNET,
        "claude-3-5-sonnet": _SONNET,
        "claude-haiku-4-5": Price(1.0, 5.0, 1.25, 0.10),
        "claude-3-5-haiku": Price(0.80, 4.0, 1.0, 0.08),
        "claude-3-haiku": Price(0.25, 1.25, 0.30, 0.03),
        # OpenAI: input, output, cache write (= input), cached input.
        "gpt-5": Price(1.25, 10.0, 1.25, 0.125),
        "gpt-5-mini": Price(0.25, 2.0, 0.25, 0.025),
        "gpt-4.1": Price(2.0, 8.0, 2.0, 0.50),
        "gpt-4.1-mini": Price(0.40, 1.60, 0.40, 0.10),
        "gpt-4.1-nano": Price(0.10, 0.40, 0.10, 0.025),
        "gpt-4o": Price(2.50, 10.0, 2.50, 1.25),
        "gpt-4o-2024-05-13": Price(5.0, 15.0, 5.0, 5.0),  # the first snapshot: no cache price
        "gpt-4o-mini": Price(0.15, 0.60, 0.15, 0.075),
        "o1": Price(15.0, 60.0, 15.0, 7.50),
        "o3-mini": Price(1.10, 4.40, 1.10, 0.55),
        "o4-mini": Price(1.10, 4.40, 1.10, 0.275),
    }
)


#: What a geographic or in-region Bedrock profile costs over ``global.`` for the models of
#: :data:`BEDROCK_REGIONAL_PREMIUM_MODELS` (about 10 %, see the module docstring).
GEOGRAPHIC_MULTIPLIER = 1.10

#: Bedrock inference-profile prefix (``""``: an in-region id with no prefix) -> multiplier
#: on the shipped price, for the models of :data:`BEDROCK_REGIONAL_PREMIUM_MODELS`. A
#: prefix not listed here is a geography AWS added later: :data:`GEOGRAPHIC_MULTIPLIER`.
BEDROCK_PROFILE_MULTIPLIERS = MappingProxyType(
    {
        "global": 1.0,
        "us": GEOGRAPHIC_MULTIPLIER,
        "eu": GEOGRAPHIC_MULTIPLIER,
        "apac": GEOGRAPHIC_MULTIPLIER,
        "jp": GEOGRAPHIC_MULTIPLIER,
        "au": GEOGRAPHIC_MULTIPLIER,
        "": GEOGRAPHIC_MULTIPLIER,
    }
)

#: Shipped-table keys whose Bedrock price depends on the profile: Claude Sonnet 4.5, Haiku
#: 4.5, Opus 4.5 and every model after them.
BEDROCK_REGIONAL_PREMIUM_MODELS = frozenset(
    {
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-opus-4-5",
        "claude-sonnet-5",
        "claude-sonnet-4-6",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
    }
)


def bedrock_profile_price(price: Price, model: str, prefix: str) -> Price:
    """``price`` (the shipped price of table key ``model``) as Bedrock charges it under the
    inference-profile ``prefix`` (``"us"``, ``"global"``, ``""`` for none): every part times
    the prefix's multiplier for :data:`BEDROCK_REGIONAL_PREMIUM_MODELS`, unchanged for
    other models. Rounded to 1e-9 USD per million tokens so 3.0 * 1.1 reads 3.3."""
    if model not in BEDROCK_REGIONAL_PREMIUM_MODELS:
        return price
    m = BEDROCK_PROFILE_MULTIPLIERS.get(prefix, GEOGRAPHIC_MULTIPLIER)
    if m == 1.0:
        return price
    return Price(
        round(price.input * m, 9),
        round(price.output * m, 9),
        round(price.cache_write * m, 9),
        round(price.cache_read * m, 9),
    )


#: What Message Batches results cost as a share of the list price: "The Batch API allows
#: asynchronous processing of large volumes of requests with a 50% discount on both input
#: and output tokens" (https://platform.claude.com/docs/en/about-claude/pricing, "Batch
#: processing"; the page's table gives every model's batch input and output at half its
#: base price). Applied to every price above, cache writes and reads included, to the usage
#: of batch results fetched through the gateway.
BATCH_DISCOUNT = 0.5
