"""Prometheus metrics: every call counted once, where the pipeline ends it.

Series (``docs/observability.md`` documents each one and its labels):

- ``llmrelay_requests_total{surface, model, provider, key, team, status}``: every call the
  gateway answered, refused ones included; ``status`` is the HTTP status code the client got
  (``499``: it went away first). ``model`` is the routed public name (a configured name;
  unrouted names are ``""``), ``provider`` the serving account.
- ``llmrelay_tokens_total{model, provider, key, team, type}``, ``type`` in ``input``,
  ``output``, ``cache_read``, ``cache_creation``: the usage rows' sums.
- ``llmrelay_cost_usd_total{model, provider, key, team}``: USD, from the price table.
- ``llmrelay_request_duration_seconds{surface, model, provider}`` (histogram),
  ``llmrelay_time_to_first_token_seconds{surface, model, provider}`` (streams),
  ``llmrelay_gateway_overhead_seconds{surface}`` (the gateway's own time: to the first
  streamed byte, or to the whole answer, minus the providers' time and retry waits).
- ``llmrelay_upstream_attempts_total{provider, outcome}``: ``success``, ``retry`` (the next
  attempt went to the same target), ``fallback`` (to another), else the final error type.
- ``llmrelay_in_flight_requests``, ``llmrelay_rate_limited_total{scope}``,
  ``llmrelay_budget_refused_total{scope}`` (``key``, ``team``, ``model``).
- Read at scrape time: ``llmrelay_usage_queue_depth``, ``llmrelay_usage_rows_*_total``,
  ``llmrelay_counter_store_fallback``, ``llmrelay_target_cooldown{target}`` (seconds of
  cooldown left), ``llmrelay_spans_dropped_total``.
- ``prometheus_client``'s standard ``process_*`` (CPU seconds, resident memory, open file
  descriptors, start time), ``python_gc_*`` and ``python_info`` series.

A call costs one dictionary lookup and a dozen increments of plain Python numbers: the
figures are kept here, on the event loop's thread, and turned into Prometheus metric
families only when scraped (``prometheus_client``'s own counters take a lock and check
their state on every increment, which cost several times more per call). The exposition,
the registry and the text format are ``prometheus_client``'s. ``docs/benchmarks.md`` has
the figure.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..config import MetricsConfig
from ..errors import BudgetExceededError, RateLimitedError
from ..pipeline.call import Call

__all__ = ["GatewayState", "Metrics"]

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1)
_OTHER = "other"


@dataclass(slots=True, frozen=True)
class GatewayState:
    """What the scrape reads from the gateway's parts (callables, read only then)."""

    usage_counts: Callable[[], Mapping[str, int]]
    counters_failed_over: Callable[[], bool]
    cooldowns: Callable[[], Mapping[str, float]]
    spans_dropped: Callable[[], int]


class _StateCollector(Collector):
    def __init__(self, state: GatewayState) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        counts = self._state.usage_counts()
        depth = GaugeMetricFamily(
            "llmrelay_usage_queue_depth", "Usage rows waiting for the writer."
        )
        depth.add_metric([], counts.get("queue_depth", 0))
        yield depth
        for name, help_text in (
            ("written", "Usage rows written to the store."),
            ("dropped", "Usage rows lost: the queue and its spill file were full."),
            ("spilled", "Usage rows spilled to the local file while the store was away."),
            ("dead_lettered", "Usage rows the store refused, kept in the dead-letter file."),
        ):
            family = CounterMetricFamily(f"llmrelay_usage_rows_{name}", help_text)
            family.add_metric([], counts.get(name, 0))
            yield family
        fallback = GaugeMetricFamily(
            "llmrelay_counter_store_fallback",
            "1 while the shared counter store is away and in-process counters serve.",
        )
        fallback.add_metric([], 1 if self._state.counters_failed_over() else 0)
        yield fallback
        cooldown = GaugeMetricFamily(
            "llmrelay_target_cooldown",
            "Seconds of cooldown left for a virtual model's target (0: in service).",
            labels=["target"],
        )
        for target, seconds in sorted(self._state.cooldowns().items()):
            cooldown.add_metric([target], seconds)
        yield cooldown
        spans = CounterMetricFamily(
            "llmrelay_spans_dropped", "Trace spans dropped because the export queue was full."
        )
        spans.add_metric([], self._state.spans_dropped())
        yield spans


class _Bounded:
    """A label's values, at most ``limit`` distinct ones; later ones become ``other``."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return _OTHER
        self._seen.add(value)
        return value


class _Histogram:
    """Bucket counts (not cumulative; the last counts what passed every bound) and a sum."""

    __slots__ = ("buckets", "counts", "sum")

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            total += n
            out.append((_bound(bound), total))
        out.append(("+Inf", total + self.counts[-1]))
        return out


def _bound(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]  # as the client writes bounds
    return text


class _Slot:
    """What one kind of call (its label values) adds to: requests, tokens (input, output,
    cache read, cache creation), cost, and its histograms."""

    __slots__ = ("cost", "duration", "overhead", "requests", "tokens", "ttft")

    def __init__(
        self,
        tokens: list[int],
        cost: list[float],
        duration: _Histogram,
        ttft: _Histogram,
        overhead: _Histogram,
    ) -> None:
        self.requests = 0
        self.tokens = tokens
        self.cost = cost
        self.duration = duration
        self.ttft = ttft
        self.overhead = overhead


class Metrics(Collector):
    """The call observer (``call_started``/``call_ended``) and the collector that turns what
    it counted into metric families when ``registry`` is scraped."""

    def __init__(self, config: MetricsConfig, state: GatewayState) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._with_key = "key" in config.labels
        self._with_team = "team" in config.labels
        self._caller_labels = [n for n in ("key", "team") if n in config.labels]
        self._key = _Bounded(config.max_label_values)
        self._team = _Bounded(config.max_label_values)
        self._slots: dict[tuple[str, ...], _Slot] = {}
        self._tokens: dict[tuple[str, ...], list[int]] = {}
        self._cost: dict[tuple[str, ...], list[float]] = {}
        self._duration: dict[tuple[str, ...], _Histogram] = {}
        self._ttft: dict[tuple[str, ...], _Histogram] = {}
        self._overhead: dict[str, _Histogram] = {}
        self._attempts: dict[tuple[str, str], int] = {}
        self._rate_limited: dict[str, int] = {}
        self._budget_refused: dict[str, int] = {}
        self._in_flight = 0
        self.registry.register(self)
        self.registry.register(_StateCollector(state))
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    @property
    def in_flight(self) -> int:
        """Calls being served now (``llmrelay_in_flight_requests``)."""
        return self._in_flight

    # -- the observer: on the event loop, once per call ------------------------------------

    def call_started(self, call: Call) -> None:
        self._in_flight += 1

    def call_ended(self, call: Call) -> None:
        self._in_flight -= 1
        record = call.record
        caller: tuple[str, ...] = ()
        if self._with_key:
            caller = (self._key(record.key_name),)
        if self._with_team:
            caller = (*caller, self._team(record.team or ""))
        key = (call.surface, call.routed, record.provider, *caller, str(record.status))
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slot(key, caller)
        slot.requests += 1
        slot.duration.observe(record.latency_s)
        if call.caller is not None:
            if record.stream and record.ttft_s is not None:
                slot.ttft.observe(record.ttft_s)
            slot.overhead.observe(call.overhead_s())
            tokens = slot.tokens
            tokens[0] += record.input_tokens
            tokens[1] += record.output_tokens
            tokens[2] += record.cache_read_input_tokens
            tokens[3] += record.cache_creation_input_tokens
            if record.cost_usd:
                slot.cost[0] += record.cost_usd
        if call.attempts:
            self._count_attempts(call)
        refusal = call.error
        if isinstance(refusal, BudgetExceededError):
            self._budget_refused[refusal.scope] = self._budget_refused.get(refusal.scope, 0) + 1
        elif isinstance(refusal, RateLimitedError):
            self._rate_limited[refusal.scope] = self._rate_limited.get(refusal.scope, 0) + 1

    def _count_attempts(self, call: Call) -> None:
        attempts = call.attempts
        counts = self._attempts
        last = len(attempts) - 1
        for i, a in enumerate(attempts):
            if a.error_type is None:
                outcome = "success"
            elif i < last:
                outcome = "retry" if attempts[i + 1].target == a.target else "fallback"
            else:
                outcome = a.error_type
            key = (a.account, outcome)
            counts[key] = counts.get(key, 0) + 1

    def _slot(self, key: tuple[str, ...], caller: tuple[str, ...]) -> _Slot:
        surface, model, provider = key[:3]
        per_call = (model, provider, *caller)
        tokens = self._tokens.setdefault(per_call, [0, 0, 0, 0])
        cost = self._cost.setdefault(per_call, [0.0])
        by_model = (surface, model, provider)
        duration = self._duration.get(by_model)
        if duration is None:
            duration = self._duration[by_model] = _Histogram(_DURATION_BUCKETS)
            self._ttft[by_model] = _Histogram(_TTFT_BUCKETS)
        overhead = self._overhead.get(surface)
        if overhead is None:
            overhead = self._overhead[surface] = _Histogram(_OVERHEAD_BUCKETS)
        slot = _Slot(tokens, cost, duration, self._ttft[by_model], overhead)
        self._slots[key] = slot
        return slot

    # -- the collector: when scraped -------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        caller = self._caller_labels
        requests = CounterMetricFamily(
            "llmrelay_requests",
            "Calls answered, refused ones included, by the HTTP status the client got.",
            labels=["surface", "model", "provider", *caller, "status"],
        )
        for key, slot in self._slots.items():
            requests.add_metric(list(key), slot.requests)
        yield requests
        tokens = CounterMetricFamily(
            "llmrelay_tokens",
            "Tokens, as on the usage rows.",
            labels=["model", "provider", *caller, "type"],
        )
        for per_call, counts in self._tokens.items():
            for kind, n in zip(_TOKEN_TYPES, counts, strict=True):
                tokens.add_metric([*per_call, kind], n)
        yield tokens
        cost = CounterMetricFamily(
            "llmrelay_cost_usd",
            "USD, as on the usage rows.",
            labels=["model", "provider", *caller],
        )
        for per_call, usd in self._cost.items():
            cost.add_metric(list(per_call), usd[0])
        yield cost
        yield _histograms(
            "llmrelay_request_duration_seconds",
            "Seconds from a call's arrival to its end (a stream's last byte).",
            ["surface", "model", "provider"],
            self._duration,
        )
        yield _histograms(
            "llmrelay_time_to_first_token_seconds",
            "Seconds from a streamed call's arrival to its first byte to the client.",
            ["surface", "model", "provider"],
            self._ttft,
        )
        yield _histograms(
            "llmrelay_gateway_overhead_seconds",
            "Seconds the gateway itself took: elapsed minus the providers' time and retry waits.",
            ["surface"],
            {(s,): h for s, h in self._overhead.items()},
        )
        attempts = CounterMetricFamily(
            "llmrelay_upstream_attempts",
            "Provider attempts by outcome: success, retry, fallback, or the final error type.",
            labels=["provider", "outcome"],
        )
        for (provider, outcome), n in self._attempts.items():
            attempts.add_metric([provider, outcome], n)
        yield attempts
        in_flight = GaugeMetricFamily("llmrelay_in_flight_requests", "Calls being served now.")
        in_flight.add_metric([], self._in_flight)
        yield in_flight
        for name, text, by_scope in (
            (
                "llmrelay_rate_limited",
                "Calls refused by a gateway rate limit, by the limit's scope.",
                self._rate_limited,
            ),
            (
                "llmrelay_budget_refused",
                "Calls refused by a spent budget, by the budget's scope.",
                self._budget_refused,
            ),
        ):
            family = CounterMetricFamily(name, text, labels=["scope"])
            for scope, n in by_scope.items():
                family.add_metric([scope], n)
            yield family


_TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation")


def _histograms(
    name: str,
    text: str,
    labels: list[str],
    series: Mapping[tuple[str, ...], _Histogram],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, text, labels=labels)
    for values, hist in series.items():
        family.add_metric(list(values), hist.cumulative(), hist.sum)
    return family
