"""Token usage of one call, provider-neutral.

Counts are tokens. Field names follow Anthropic's ``Usage`` (``anthropic/types/usage.py``):
total input is ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Usage"]


def _int(v: object) -> int | None:
    """A count from a provider: ints only (others are ignored), negative ones read as 0."""
    return max(v, 0) if isinstance(v, int) and not isinstance(v, bool) else None


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    #: Provider fields beyond the four counts (``cache_creation``, ``service_tier``...).
    extra: dict[str, object] = field(default_factory=dict)

    def update_from_anthropic(self, usage: Mapping[str, object]) -> None:
        """Overwrite the counts present in an Anthropic ``usage`` object.

        ``message_delta.usage`` is cumulative, so the latest value of each count wins;
        counts that are absent, null or not integers keep their earlier value (this is the
        lenient reader the passthrough taps use; the codecs reject such counts), and a
        negative count is 0.
        """
        v = _int(usage.get("input_tokens"))
        if v is not None:
            self.input_tokens = v
        v = _int(usage.get("output_tokens"))
        if v is not None:
            self.output_tokens = v
        v = _int(usage.get("cache_creation_input_tokens"))
        if v is not None:
            self.cache_creation_input_tokens = v
        v = _int(usage.get("cache_read_input_tokens"))
        if v is not None:
            self.cache_read_input_tokens = v
