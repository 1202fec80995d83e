"""Rate limits as sliding windows: which windows a call counts against, and the refusal.

A call counts against the limits of its key, of the key's team and of the model it asked
for (in that order); each limit is a :class:`~llmrelay.stores.counters.Window`. Request
limits (``rpm``, ``rph``, ``rpd``) count one per call. Token limits (``tpm``, ``tph``,
``tpd``) count input plus output tokens: an estimate is taken when the call is admitted
(the request body's size in bytes / 4, image data included) and corrected to the
provider's usage when the call ends.

Windows are kept in 60 buckets: a minute in seconds, an hour in minutes, a day in 24-minute
buckets; a call is admitted when the last ``window`` seconds, counted by bucket, leave room.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.usage import Usage
from ..errors import RateLimitedError
from ..stores.counters import Window
from ..stores.keys import Limits

__all__ = [
    "LimitSet",
    "amounts_for",
    "limit_set",
    "rate_limited",
    "refusal",
    "token_estimate",
    "tokens_counted",
]

# (field, window seconds, bucket seconds, counts tokens, wording)
_SPECS = (
    ("rpm", 60, 1, False, "requests per minute"),
    ("rph", 3600, 60, False, "requests per hour"),
    ("rpd", 86400, 1440, False, "requests per day"),
    ("tpm", 60, 1, True, "tokens per minute"),
    ("tph", 3600, 60, True, "tokens per hour"),
    ("tpd", 86400, 1440, True, "tokens per day"),
)


@dataclass(slots=True, frozen=True)
class LimitSet:
    """The windows of one scope (``key:vk_1``, ``team:ml``, ``model:anthropic/claude``),
    with what each means, for messages. ``tokens[i]`` says if window i counts tokens."""

    windows: tuple[Window, ...]
    tokens: tuple[bool, ...]
    wording: tuple[str, ...]


_cache: dict[tuple[str, Limits], LimitSet] = {}


def limit_set(scope: str, limits: Limits) -> LimitSet:
    """The windows for a scope's limits; memoised (limits change rarely)."""
    cached = _cache.get((scope, limits))
    if cached is not None:
        return cached
    windows: list[Window] = []
    tokens: list[bool] = []
    wording: list[str] = []
    for name, window_s, bucket_s, counts_tokens, words in _SPECS:
        limit = getattr(limits, name)
        if limit is None:
            continue
        windows.append(Window(f"rl:{scope}:{name}", limit, window_s, bucket_s))
        tokens.append(counts_tokens)
        wording.append(f"{limit} {words}")
    result = LimitSet(tuple(windows), tuple(tokens), tuple(wording))
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[(scope, limits)] = result
    return result


def rate_limited(
    scope: str, wording: str, retry_after_s: float, amount: int, limit: int, window_s: int
) -> RateLimitedError:
    """The 429 for a refused window, with ``retry-after`` (whole seconds, rounded up) and
    ``retry-after-ms``, which the Anthropic and OpenAI SDKs honour."""
    who = scope.replace(":", " ", 1)
    if amount > limit:
        err = RateLimitedError(
            f"rate limit: {who} allows {wording}; this request needs about {amount} tokens,"
            " more than the whole window",
            headers={"x-should-retry": "false"},
        )
    else:
        seconds = max(retry_after_s, 0.001)
        err = RateLimitedError(
            f"rate limit: {who} allows {wording}; retry in {math.ceil(seconds)} s",
            headers={
                "retry-after": str(math.ceil(seconds)),
                "retry-after-ms": str(math.ceil(seconds * 1000)),
            },
        )
    err.scope = scope.split(":", 1)[0]
    return err


def amounts_for(sets: Sequence[LimitSet], tokens: int) -> list[int]:
    """One amount per window of ``sets`` in order: 1 for request windows, ``tokens`` else."""
    return [tokens if t else 1 for s in sets for t in s.tokens]


def token_estimate(body_bytes: int) -> int:
    """Tokens a call is held at before its usage is known: its body's bytes / 4 (at least 1)."""
    return max(1, body_bytes // 4)


def tokens_counted(usage: Usage) -> int:
    """The tokens token limits count: input, cache writes and output (cache reads do not
    count, as in Anthropic's own input-token limits)."""
    return usage.input_tokens + usage.cache_creation_input_tokens + usage.output_tokens


def refusal(
    sets: Sequence[LimitSet], index: int, retry_after_s: float, amounts: Sequence[int]
) -> RateLimitedError:
    """The 429 for window ``index`` of ``sets`` (numbered across the sets, in order)."""
    windows = [w for s in sets for w in s.windows]
    wording = [text for s in sets for text in s.wording]
    w = windows[index]
    who = ":".join(w.key.split(":")[1:3])
    return rate_limited(who, wording[index], retry_after_s, amounts[index], w.limit, w.window_s)
