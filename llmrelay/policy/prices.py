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
Anthropic's list prices here unless config overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["BATCH_DISCOUNT", "SHIPPED_PRICES", "Price"]


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

#: What Message Batches results cost as a share of the list price: "The Batch API allows
#: asynchronous processing of large volumes of requests with a 50% discount on both input
#: and output tokens" (https://platform.claude.com/docs/en/about-claude/pricing, "Batch
#: processing"; the page's table gives every model's batch input and output at half its
#: base price). Applied to every price above, cache writes and reads included, to the usage
#: of batch results fetched through the gateway.
BATCH_DISCOUNT = 0.5
