"""What the gateway has learnt about each target (``account/model``) from recent calls:
whether it is cooling down after failures, and how fast it has been.

State is per process and in memory; it is learnt from calls to virtual models only (a call
naming ``account/model`` directly never touches it). Times are ``time.monotonic`` seconds.
With Redis configured, :mod:`llmrelay.routing.shared_health` shares it between instances
through :attr:`Health.on_cooldown`, :meth:`Health.cool`, :meth:`LatencyStats.sums` and
:meth:`LatencyStats.set_fleet`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Health", "LatencyStats"]


@dataclass(slots=True)
class _State:
    failures: int = 0  # consecutive
    until: float = 0.0  # cooling down until then
    probation: bool = False  # cooled before and not succeeded since


class Health:
    """Cooldowns: a target is skipped after ``failures`` consecutive failures, for
    ``cooldown_s`` seconds, or at once when a throttling answer carries ``retry-after``
    (for that long, at most ``max_retry_after_s``). After a cooldown the target is on
    probation: its next failure cools it again at once; a success clears everything.
    """

    def __init__(
        self,
        *,
        failures: int,
        cooldown_s: float,
        max_retry_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._max_retry_after_s = max_retry_after_s
        self._clock = clock
        self._states: dict[str, _State] = {}
        #: Called with (target, seconds) when this process starts a cooldown (shared health
        #: publishes it); must not raise or block.
        self.on_cooldown: Callable[[str, float], None] | None = None

    def cool(self, target: str, seconds: float) -> None:
        """Cool ``target`` for ``seconds`` from now (another instance found it failing);
        an already longer cooldown stays. Its failure count is left as it is."""
        if seconds <= 0:
            return
        state = self._states.setdefault(target, _State())
        state.until = max(state.until, self._clock() + seconds)
        state.probation = True

    def cooling(self, target: str) -> bool:
        """True while ``target`` is cooling down."""
        state = self._states.get(target)
        return state is not None and state.until > self._clock()

    def cooling_for(self, target: str) -> float:
        """Seconds of cooldown left (0 when none)."""
        state = self._states.get(target)
        return max(0.0, state.until - self._clock()) if state is not None else 0.0

    def cooldowns(self) -> dict[str, float]:
        """Seconds of cooldown left, by target, for the targets that ever failed (0: not
        cooling now)."""
        now = self._clock()
        return {t: max(0.0, s.until - now) for t, s in self._states.items()}

    def success(self, target: str) -> None:
        if target in self._states:
            del self._states[target]

    def failure(self, target: str, retry_after_s: float | None = None) -> float:
        """Count a failure of ``target``; returns the cooldown it started in seconds (0: none)."""
        state = self._states.setdefault(target, _State())
        state.failures += 1
        period = 0.0
        if retry_after_s is not None and retry_after_s > 0:
            period = min(retry_after_s, self._max_retry_after_s)
        if state.failures >= self._threshold or state.probation:
            period = max(period, self._cooldown_s)
        if period <= 0:
            return 0.0
        state.until = max(state.until, self._clock() + period)
        state.failures = 0
        state.probation = True
        if self.on_cooldown is not None:
            self.on_cooldown(target, period)
        return period


@dataclass(slots=True)
class _Samples:
    values: deque[tuple[float, float, int]] = field(default_factory=deque)  # when, s, tokens


class LatencyStats:
    """Seconds per output token of each target's recent successful calls: over the last
    ``window_calls`` calls that ended within the last ``window_s`` seconds, their seconds
    summed over their output tokens summed. (A ratio of sums, not a mean of ratios: a short
    answer, all time to first token, would otherwise weigh as much as a long one.)"""

    def __init__(
        self, *, window_calls: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_calls = window_calls
        self._window_s = window_s
        self._clock = clock
        self._targets: dict[str, _Samples] = {}
        self._fleet: dict[str, float] = {}

    def set_fleet(self, figures: dict[str, float]) -> None:
        """Seconds per output token by target over every instance (shared health); they
        replace this process's own figures until the next call (``{}``: own figures only)."""
        self._fleet = figures

    def sums(self) -> dict[str, tuple[float, int]]:
        """(seconds, output tokens) summed over each target's samples in the window: what
        this process adds to the fleet's figures."""
        out: dict[str, tuple[float, int]] = {}
        horizon = self._clock() - self._window_s
        for target, samples in self._targets.items():
            live = [v for v in samples.values if v[0] >= horizon]
            if live:
                out[target] = (sum(v[1] for v in live), sum(v[2] for v in live))
        return out

    def observe(self, target: str, seconds: float, output_tokens: int) -> None:
        """One successful call: ``seconds`` from its attempt's start to its last byte."""
        samples = self._targets.setdefault(target, _Samples())
        samples.values.append((self._clock(), seconds, max(1, output_tokens)))
        if len(samples.values) > self._window_calls:
            samples.values.popleft()

    def seconds_per_token(self, target: str) -> float | None:
        """The recent figure (the fleet's when shared health has one), or None when the
        target has no measurement in the window."""
        fleet = self._fleet.get(target)
        if fleet is not None:
            return fleet
        samples = self._targets.get(target)
        if samples is None:
            return None
        values = samples.values
        horizon = self._clock() - self._window_s
        while values and values[0][0] < horizon:
            values.popleft()
        if not values:
            return None
        return sum(v[1] for v in values) / sum(v[2] for v in values)
