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

The per-call series cache their label children, so a call costs a few dictionary lookups
and a dozen increments (``docs/benchmarks.md`` has the figure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


class Metrics:
    """The registry and the call observer that feeds it (``call_started``/``call_ended``)."""

    def __init__(self, config: MetricsConfig, state: GatewayState) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._with_key = "key" in config.labels
        self._with_team = "team" in config.labels
        self._key = _Bounded(config.max_label_values)
        self._team = _Bounded(config.max_label_values)
        caller = [n for n in ("key", "team") if n in config.labels]
        self._requests = Counter(
            "llmrelay_requests_total",
            "Calls answered, refused ones included, by the HTTP status the client got.",
            ["surface", "model", "provider", *caller, "status"],
            registry=r,
        )
        self._tokens = Counter(
            "llmrelay_tokens_total",
            "Tokens, as on the usage rows.",
            ["model", "provider", *caller, "type"],
            registry=r,
        )
        self._cost = Counter(
            "llmrelay_cost_usd_total",
            "USD, as on the usage rows.",
            ["model", "provider", *caller],
            registry=r,
        )
        self._duration = Histogram(
            "llmrelay_request_duration_seconds",
            "Seconds from a call's arrival to its end (a stream's last byte).",
            ["surface", "model", "provider"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self._ttft = Histogram(
            "llmrelay_time_to_first_token_seconds",
            "Seconds from a streamed call's arrival to its first byte to the client.",
            ["surface", "model", "provider"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self._overhead = Histogram(
            "llmrelay_gateway_overhead_seconds",
            "Seconds the gateway itself took: elapsed minus the providers' time and retry waits.",
            ["surface"],
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self._attempts = Counter(
            "llmrelay_upstream_attempts_total",
            "Provider attempts by outcome: success, retry, fallback, or the final error type.",
            ["provider", "outcome"],
            registry=r,
        )
        self._in_flight = Gauge(
            "llmrelay_in_flight_requests", "Calls being served now.", registry=r
        )
        self._rate_limited = Counter(
            "llmrelay_rate_limited_total",
            "Calls refused by a gateway rate limit, by the limit's scope.",
            ["scope"],
            registry=r,
        )
        self._budget_refused = Counter(
            "llmrelay_budget_refused_total",
            "Calls refused by a spent budget, by the budget's scope.",
            ["scope"],
            registry=r,
        )
        r.register(_StateCollector(state))
        self._children: dict[tuple[str, ...], _CallSeries] = {}

    def call_started(self, call: Call) -> None:
        self._in_flight.inc()

    def call_ended(self, call: Call) -> None:
        self._in_flight.dec()
        record = call.record
        caller: tuple[str, ...] = ()
        if self._with_key:
            caller = (self._key(record.key_name),)
        if self._with_team:
            caller = (*caller, self._team(record.team or ""))
        model, provider = call.routed, record.provider
        key = (call.surface, model, provider, *caller, str(record.status))
        series = self._children.get(key)
        if series is None:
            series = self._series(call.surface, model, provider, caller, str(record.status))
            self._children[key] = series
        series.requests.inc()
        series.duration.observe(record.latency_s)
        if call.caller is not None:
            self._overhead_of(call, series)
            if record.input_tokens:
                series.input.inc(record.input_tokens)
            if record.output_tokens:
                series.output.inc(record.output_tokens)
            if record.cache_read_input_tokens:
                series.cache_read.inc(record.cache_read_input_tokens)
            if record.cache_creation_input_tokens:
                series.cache_creation.inc(record.cache_creation_input_tokens)
            if record.cost_usd:
                series.cost.inc(record.cost_usd)
        if call.attempts:
            self._count_attempts(call)
        refusal = call.error
        if isinstance(refusal, BudgetExceededError):
            self._budget_refused.labels(refusal.scope).inc()
        elif isinstance(refusal, RateLimitedError):
            self._rate_limited.labels(refusal.scope).inc()

    def _overhead_of(self, call: Call, series: _CallSeries) -> None:
        if call.record.stream and call.record.ttft_s is not None:
            series.ttft.observe(call.record.ttft_s)
        series.overhead.observe(call.overhead_s())

    def _count_attempts(self, call: Call) -> None:
        attempts = call.attempts
        last = len(attempts) - 1
        for i, a in enumerate(attempts):
            if a.error_type is None:
                outcome = "success"
            elif i < last:
                outcome = "retry" if attempts[i + 1].target == a.target else "fallback"
            else:
                outcome = a.error_type
            self._attempts.labels(a.account, outcome).inc()

    def _series(
        self, surface: str, model: str, provider: str, caller: tuple[str, ...], status: str
    ) -> _CallSeries:
        per_call = (model, provider, *caller)
        tokens = self._tokens
        return _CallSeries(
            requests=self._requests.labels(surface, model, provider, *caller, status),
            duration=self._duration.labels(surface, model, provider),
            ttft=self._ttft.labels(surface, model, provider),
            overhead=self._overhead.labels(surface),
            input=tokens.labels(*per_call, "input"),
            output=tokens.labels(*per_call, "output"),
            cache_read=tokens.labels(*per_call, "cache_read"),
            cache_creation=tokens.labels(*per_call, "cache_creation"),
            cost=self._cost.labels(*per_call),
        )


@dataclass(slots=True, frozen=True)
class _CallSeries:
    """The label children one kind of call updates (cached per label values)."""

    requests: Counter
    duration: Histogram
    ttft: Histogram
    overhead: Histogram
    input: Counter
    output: Counter
    cache_read: Counter
    cache_creation: Counter
    cost: Counter
