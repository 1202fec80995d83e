"""Model rate limits on the targets of a virtual model.

A model's own limits (``providers.<account>.models.<name>.limits``: a provider quota shared
by every caller) hold however the model is reached: asked for by name (counted when the
call is admitted, :mod:`llmrelay.policy.admission`) or tried as a target of a virtual model
(counted here, when the attempt starts). A target without room is not tried: its attempt
fails as a 429 with ``retry-after``, so the executor moves on to the next target, and the
client gets that 429 only if every target was full or failing.

Token windows are held at the call's estimate when the attempt starts; when the call ends
the target that served it is corrected to the tokens it used and the others give their
estimate back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ..stores.counters import CounterStore, Window
from ..stores.keys import Limits
from .limits import LimitSet, amounts_for, limit_set, refusal

__all__ = ["TargetHold", "TargetLimits"]

log = logging.getLogger("llmrelay.policy")


@dataclass(slots=True, frozen=True)
class TargetHold:
    """What one attempt counted on its target's windows (``at``: the store's clock)."""

    target: str
    token_windows: tuple[Window, ...]
    estimate: int
    at: float


class TargetLimits:
    def __init__(self, counters: CounterStore, model_limits: Mapping[str, Limits]) -> None:
        self._counters = counters
        self._sets: dict[str, LimitSet] = {
            m: limit_set(f"model:{m}", lim) for m, lim in model_limits.items()
        }
        self._pending: set[asyncio.Task[None]] = set()

    def limits(self, target: str) -> bool:
        """Whether ``target`` (an ``account/model``) has limits of its own."""
        return target in self._sets

    async def hold(self, target: str, estimate: int) -> TargetHold | None:
        """Count one attempt on ``target``; None when it has no limits.

        Raises:
            RateLimitedError: a window of the target has no room (with ``retry-after``).
        """
        limits = self._sets.get(target)
        if limits is None:
            return None
        amounts = amounts_for([limits], estimate)
        result = await self._counters.acquire(limits.windows, amounts)
        if not result.ok:
            raise refusal([limits], result.refused, result.retry_after_s, amounts)
        tokens = tuple(w for w, t in zip(limits.windows, limits.tokens, strict=True) if t)
        return TargetHold(target, tokens, estimate, result.at)

    def release_soon(self, holds: list[TargetHold], served_by: str | None, used: int) -> None:
        """Correct the token windows in the background: the serving target to ``used``
        tokens, every other attempt's estimate given back."""
        work = [h for h in holds if h.token_windows]
        if not work:
            return
        task = asyncio.get_running_loop().create_task(self._release(work, served_by, used))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _release(self, holds: list[TargetHold], served_by: str | None, used: int) -> None:
        try:
            for h in holds:
                delta = (used if h.target == served_by else 0) - h.estimate
                if delta:
                    windows = list(h.token_windows)
                    await self._counters.add(windows, [delta] * len(windows), h.at)
        except Exception as err:
            log.warning(
                "could not settle a target's token limits",
                extra={"error": f"{type(err).__name__}: {err}"},
            )

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
