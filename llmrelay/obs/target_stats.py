"""Recent outcomes per target (``account/model``) for the console's Models page and
``/admin/models``: error rate and latency p50/p95 of the last attempts, and calls in flight.

An observer (:class:`~llmrelay.pipeline.call.CallObserver`): when a call ends it appends
each of the call's provider attempts to its target's ring (only attempts that went to the
provider: a request the gateway refused itself, e.g. a body the target's wire cannot carry,
is the caller's error, not the target's) (at most :data:`WINDOW_ATTEMPTS`
per target, and only those of the last :data:`WINDOW_S` seconds count). On the event loop,
a few deque appends per call; per process and in memory, like the router's health. At most
:data:`MAX_TARGETS` targets are kept (attempts go only to configured targets, so the bound
is never met in practice; past it new targets are not tracked).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..pipeline.call import Call

__all__ = ["MAX_TARGETS", "WINDOW_ATTEMPTS", "WINDOW_S", "TargetStats", "TargetSummary"]

WINDOW_ATTEMPTS = 200
WINDOW_S = 300.0
MAX_TARGETS = 10_000


@dataclass(slots=True, frozen=True)
class TargetSummary:
    """A target's recent attempts: how many, the share that failed (status >= 400 or an
    error), and latency percentiles in milliseconds (nearest rank)."""

    attempts: int
    error_rate: float
    p50_ms: float
    p95_ms: float


def _rank(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


class TargetStats:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rings: dict[str, deque[tuple[float, bool, float]]] = {}
        self.in_flight = 0

    def call_started(self, call: Call) -> None:
        self.in_flight += 1

    def call_ended(self, call: Call) -> None:
        self.in_flight -= 1
        now = self._clock()
        for a in call.attempts:
            if not a.upstream:  # the gateway's own refusal, not the target's outcome
                continue
            ring = self._rings.get(a.target)
            if ring is None:
                if len(self._rings) >= MAX_TARGETS:
                    continue
                ring = self._rings[a.target] = deque(maxlen=WINDOW_ATTEMPTS)
            failed = a.status >= 400 or a.error_type is not None
            ring.append((now, failed, a.latency_s * 1000))

    def summary(self, target: str) -> TargetSummary | None:
        """The target's attempts of the last ``WINDOW_S`` seconds, or None (none)."""
        ring = self._rings.get(target)
        if not ring:
            return None
        horizon = self._clock() - WINDOW_S
        recent = [(failed, ms) for when, failed, ms in ring if when >= horizon]
        if not recent:
            return None
        ms = sorted(m for _, m in recent)
        errors = sum(1 for failed, _ in recent if failed)
        return TargetSummary(len(recent), errors / len(recent), _rank(ms, 0.5), _rank(ms, 0.95))
