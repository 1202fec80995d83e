"""Prices per provider model id, and the cost of a call from its usage.

A :class:`Price` is USD per million tokens of each kind. Token kinds follow Anthropic's
``usage`` object, which llmrelay's canonical usage keeps for every provider: ``input_tokens``
are the input tokens *not* read from or written to the prompt cache;
``cache_creation_input_tokens`` were written to it and ``cache_read_input_tokens`` read from
it, so a call's whole prompt is the sum of the three (Anthropic's prompt caching guide,
"Tracking cache performance": https://platform.claude.com/docs/en/build-with-claude/prompt-caching).
The OpenAI codecs already subtract ``cached_tokens`` from ``prompt_tokens`` into that shape,
so one formula prices both.

:class:`PriceTable` finds a price for the model id a provider was called with, trying in
order: the id as given, then with a Bedrock region/vendor prefix (``us.``, ``global.``,
``anthropic.``) and version suffix (``-v1:0``) removed, a Vertex ``@20250929`` or
``@latest`` suffix removed, and a date suffix (``-20250929``, ``-2024-08-06``) or ``-latest``
removed. At each step config overrides win over the shipped table
(:mod:`llmrelay.policy.prices`). Any other id, an Azure deployment name for example, is
priced only if it is a key exactly. A shipped price found for a Bedrock id is the one of its
inference profile (``global.``, ``us.``, ..., or none:
:func:`~llmrelay.policy.prices.bedrock_profile_price`); a config price is used as written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping

from .prices import SHIPPED_PRICES, Price, bedrock_profile_price

__all__ = ["Price", "PriceTable", "cost", "to_micro_usd", "worst_case"]

_BEDROCK_PREFIX = re.compile(r"^(?:([a-z]{2,6})\.)?anthropic\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
_VERTEX_VERSION = re.compile(r"@(?:\d{8}|latest)$")
_DATE = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$")

_PER_TOKEN = 1e-6  # prices are per million tokens
_MEMO_MAX = 4096


def cost(
    price: Price,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> float:
    """USD for a call's usage (token counts as in the module docstring)."""
    return (
        input_tokens * price.input
        + output_tokens * price.output
        + cache_creation_input_tokens * price.cache_write
        + cache_read_input_tokens * price.cache_read
    ) * _PER_TOKEN


def worst_case(price: Price, input_tokens: int, max_output_tokens: int) -> float:
    """The most a call can cost, in USD: every input token at the dearer of the input and
    cache-write prices, and all ``max_output_tokens`` generated. ``input_tokens`` is the
    estimate of the whole prompt."""
    return (
        input_tokens * max(price.input, price.cache_write) + max_output_tokens * price.output
    ) * _PER_TOKEN


def to_micro_usd(usd: float) -> int:
    """USD as integer micro-USD for budget counters, a fraction of a micro-USD rounded up
    (float noise below 1e-6 micro-USD is ignored, so 3e-6 USD is 3, not 4)."""
    return math.ceil(round(usd * 1_000_000, 6))


class PriceTable:
    """Prices by provider model id: ``overrides`` (from config) over ``shipped``."""

    def __init__(
        self,
        overrides: Mapping[str, Price] | None = None,
        *,
        shipped: Mapping[str, Price] | None = None,
    ) -> None:
        if shipped is None:
            shipped = SHIPPED_PRICES
        self._overrides = {k.lower(): v for k, v in (overrides or {}).items()}
        self._shipped = dict(shipped)
        self._memo: dict[str, Price | None] = {}

    def get(self, provider_model: str) -> Price | None:
        """The price of ``provider_model``, or None if neither table knows it."""
        try:
            return self._memo[provider_model]
        except KeyError:
            pass
        found = None
        model = provider_model.lower()
        for candidate in _candidates(model):
            found = self._overrides.get(candidate)
            if found is not None:
                break
            found = self._shipped.get(candidate)
            if found is not None:
                bedrock = _BEDROCK_PREFIX.match(model)
                if bedrock is not None and candidate != model:
                    found = bedrock_profile_price(found, candidate, bedrock.group(1) or "")
                break
        if len(self._memo) >= _MEMO_MAX:  # ids can come from clients: keep this bounded
            self._memo.clear()
        self._memo[provider_model] = found
        return found


def _candidates(model: str) -> Iterator[str]:
    """``model``, then ever more normalised forms of it (each yielded once it changes)."""
    yield model
    if _BEDROCK_PREFIX.match(model):
        model = _BEDROCK_PREFIX.sub("", model)
        yield model
        stripped = _BEDROCK_VERSION.sub("", model)
        if stripped != model:
            model = stripped
            yield model
    for pattern in (_VERTEX_VERSION, _DATE):
        stripped = pattern.sub("", model)
        if stripped != model:
            model = stripped
            yield model
