"""What the console shows, as JSON-ready dicts: the admin API serves the same dicts.

- :func:`overview`: series (requests, tokens, USD, error rate per hour or day bucket), a
  breakdown by key, team, model or provider (top N and "other"), and the live state
  (in-flight calls, counter store, usage writer). ``GET /admin/overview``.
- :func:`budgets`: each key's and team's spend against its budget this period, with the
  forecast at the current rate. ``GET /admin/budgets``.
- :func:`models`: every public and virtual model with its targets, cooldowns, live
  seconds per output token and price. ``GET /admin/models``.

Times are Unix seconds (UTC), money USD, durations milliseconds unless a name says ``_s``.
Store calls block: callers run these functions in a worker thread (see
:mod:`llmrelay.surfaces.console`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ..config import Settings, model_entry
from ..obs.target_stats import TargetStats
from ..policy.budget import period_of
from ..policy.pricing import PriceTable
from ..routing.health import Health, LatencyStats
from ..stores._rollup_sql import BREAKDOWN_COLUMNS
from ..stores.keys import KeyStore
from ..stores.usage import Totals, UsageStore

__all__ = ["LiveState", "OverviewQuery", "budgets", "models", "overview", "overview_query"]

#: Ranges the overview offers, in seconds.
RANGES = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
BUCKETS = {"hour": 3600, "day": 86400}
#: Longest custom range, and most buckets a series may have (a chart stays readable).
MAX_RANGE_S = 366 * 86400
MAX_BUCKETS = 800
#: Largest "top N" of a breakdown.
MAX_TOP = 50


@dataclass(slots=True, frozen=True)
class OverviewQuery:
    """A validated overview request: [``since``, ``until``) in whole hours (Unix seconds),
    ``bucket_s`` 3600 or 86400, ``by`` a breakdown field, ``top`` groups shown by name."""

    range: str
    since: int
    until: int
    bucket: str
    bucket_s: int
    by: str
    top: int


def _date(text: str, name: str) -> int:
    try:
        return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise ValueError(f"{name}: expected a date YYYY-MM-DD, got {text[:40]!r}") from None


def overview_query(query: Mapping[str, str], now: float | None = None) -> OverviewQuery:
    """The overview request of ``query`` (``range`` 24h/7d/30d/custom, ``since`` and
    ``until`` dates for custom, ``bucket`` hour/day, ``by`` key/team/model/provider, ``top``
    1-50). Raises ``ValueError`` naming the parameter."""
    now = time.time() if now is None else now
    rng = query.get("range") or "24h"
    if rng == "custom":
        since = _date(query.get("since", ""), "since")
        until = _date(query.get("until", ""), "until") + 86400  # the until day included
        if until <= since:
            raise ValueError("until: expected a date on or after since")
        if until - since > MAX_RANGE_S:
            raise ValueError("since/until: a custom range is at most 366 days")
    elif rng in RANGES:
        until = (int(now) // 3600 + 1) * 3600  # the current hour included
        since = until - RANGES[rng]
    else:
        raise ValueError(f"range: expected 24h, 7d, 30d or custom, got {rng[:40]!r}")
    bucket = query.get("bucket") or ("hour" if until - since <= 2 * 86400 else "day")
    if bucket not in BUCKETS:
        raise ValueError(f"bucket: expected hour or day, got {bucket[:40]!r}")
    bucket_s = BUCKETS[bucket]
    if (until - since) // bucket_s > MAX_BUCKETS:
        raise ValueError(f"bucket: {bucket} buckets over this range would be more than 800")
    by = query.get("by") or "key"
    if by not in BREAKDOWN_COLUMNS:
        raise ValueError(f"by: expected key, team, model or provider, got {by[:40]!r}")
    top_text = query.get("top") or "8"
    if not top_text.isdigit() or not 1 <= int(top_text) <= MAX_TOP:
        raise ValueError(f"top: expected an integer from 1 to {MAX_TOP}, got {top_text[:40]!r}")
    return OverviewQuery(rng, since, until, bucket, bucket_s, by, int(top_text))


class LiveState(Protocol):
    """What the overview reads of the running gateway (``app.Gateway``)."""

    counters_failed_over: bool

    def in_flight(self) -> int | None: ...
    def usage_writer(self) -> dict[str, int]: ...


def _totals_json(t: Totals) -> dict[str, Any]:
    return {
        "requests": t.requests,
        "errors": t.errors,
        "error_rate": t.errors / t.requests if t.requests else 0.0,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cache_creation_input_tokens": t.cache_creation_input_tokens,
        "cache_read_input_tokens": t.cache_read_input_tokens,
        "tokens": t.input_tokens
        + t.output_tokens
        + t.cache_creation_input_tokens
        + t.cache_read_input_tokens,
        "cost_usd": round(t.cost_usd, 6),
        "avg_latency_ms": round(1000 * t.latency_s / t.requests, 1) if t.requests else None,
    }


def _sum(items: list[Totals]) -> Totals:
    return Totals(
        sum(t.requests for t in items),
        sum(t.errors for t in items),
        sum(t.input_tokens for t in items),
        sum(t.output_tokens for t in items),
        sum(t.cache_creation_input_tokens for t in items),
        sum(t.cache_read_input_tokens for t in items),
        sum(t.cost_usd for t in items),
        sum(t.latency_s for t in items),
    )


_ZERO = Totals(0, 0, 0, 0, 0, 0, 0.0, 0.0)


def overview(
    usage: UsageStore,
    q: OverviewQuery,
    live: LiveState,
    *,
    redis: bool,
    database: str,
    database_incident: str | None = None,
) -> dict[str, Any]:
    """The overview (blocking: two rollup queries). ``series`` has one point per bucket of
    the range, zeros where there were no calls; ``breakdown.other`` sums the groups past
    ``top`` (None when there are none). ``live.database_incident``: what happened to the
    SQLite file while the gateway ran (:mod:`llmrelay.stores.sqlite_file`), or None."""
    points = {p.start: p.totals for p in usage.series(q.bucket_s, q.since, q.until)}
    first = q.since // q.bucket_s * q.bucket_s
    series = [
        {"start": start, **_totals_json(points.get(start, _ZERO))}
        for start in range(first, q.until, q.bucket_s)
    ]
    groups = usage.breakdown(q.by, q.since, q.until)
    top, rest = groups[: q.top], groups[q.top :]
    other = None
    if rest:
        other = {"groups": len(rest), **_totals_json(_sum([g.totals for g in rest]))}
    if redis:
        counters = "failed over to in-process" if live.counters_failed_over else "redis ok"
    else:
        counters = "in-process"
    writer = live.usage_writer()
    return {
        "range": q.range,
        "since": q.since,
        "until": q.until,
        "bucket": q.bucket,
        "bucket_s": q.bucket_s,
        # From the series (one query), so the totals always match the chart; the breakdown
        # is a second query and may include a batch written in between.
        "totals": _totals_json(_sum(list(points.values()))),
        "series": series,
        "breakdown": {
            "by": q.by,
            "top": [{"value": g.value, **_totals_json(g.totals)} for g in top],
            "other": other,
        },
        "live": {
            "in_flight": live.in_flight(),
            "counters": counters,
            "database": database,
            "database_incident": database_incident,
            "usage_writer": writer,
            "usage_writer_state": "ok" if not writer.get("failed_writes") else "failing over",
        },
    }


def _forecast(spent: float, start: float, end: float, now: float) -> float:
    """Spend at the period's end if the rate so far goes on (USD)."""
    elapsed = max(now - start, 3600.0)  # an hour at least: no wild forecast at 00:01
    return spent * (end - start) / elapsed if now < end else spent


def budgets(
    keys: KeyStore, usage: UsageStore, settings: Settings, now: float | None = None
) -> dict[str, Any]:
    """Each virtual key's and each config team's budget this period: spend (USD, from the
    usage store: it trails the live counters by the usage writer's flush), the fraction
    used, and the forecast at the current rate. Keys without a budget are listed with
    ``budget: null`` and their spend this month; ``last_used`` is a key's newest call (Unix
    seconds, None: never). Blocking: an indexed sum and an index probe per key."""
    now = time.time() if now is None else now
    out_keys = []
    for key in keys.list():
        spec = key.budget
        period = period_of(spec.period if spec else "month", now)
        spent = usage.spend("key", key.id, period.start)
        out_keys.append(
            _budget_row(key.id, key.name, spec.usd if spec else None, period, spent, now)
            | {"period": spec.period if spec else "month", "last_used": usage.last_used(key.id)}
        )
    out_teams = []
    for name, team in sorted(settings.teams.items()):
        tb = team.budget
        period = period_of(tb.period if tb else "month", now)
        spent = usage.spend("team", name, period.start)
        out_teams.append(
            _budget_row(name, name, tb.usd if tb else None, period, spent, now)
            | {"period": tb.period if tb else "month"}
        )
    return {"keys": out_keys, "teams": out_teams, "now": now}


def _budget_row(
    ident: str, name: str, usd: float | None, period: Any, spent: float, now: float
) -> dict[str, Any]:
    forecast = _forecast(spent, period.start, period.end, now)
    return {
        "id": ident,
        "name": name,
        "budget_usd": usd,
        "spent_usd": round(spent, 6),
        "used": (spent / usd) if usd else None,
        "forecast_usd": round(forecast, 6),
        "period_label": period.label,
        "period_start": period.start,
        "period_end": period.end,
    }


def models(
    settings: Settings,
    health: Health,
    latency: LatencyStats,
    prices: PriceTable,
    stats: TargetStats | None = None,
) -> dict[str, Any]:
    """Every ``account/model`` and virtual model: provider model id, price (USD per million
    tokens, None when unknown), cooldown left (seconds), live milliseconds per output token,
    and ``recent``: the last 5 minutes' attempts (count, error rate, p50/p95 ms; None
    without any); virtual models with strategy and targets (priority, weight)."""

    def target_state(target: str, provider_model: str | None) -> dict[str, Any]:
        price = prices.get(provider_model) if provider_model else None
        spt = latency.seconds_per_token(target)
        recent = stats.summary(target) if stats is not None else None
        return {
            "recent": None
            if recent is None
            else {
                "attempts": recent.attempts,
                "error_rate": recent.error_rate,
                "p50_ms": round(recent.p50_ms, 1),
                "p95_ms": round(recent.p95_ms, 1),
            },
            "cooldown_s": round(health.cooling_for(target), 1),
            "ms_per_output_token": None if spt is None or not math.isfinite(spt) else spt * 1e3,
            "price": None
            if price is None
            else {
                "input": price.input,
                "output": price.output,
                "cache_write": price.cache_write,
                "cache_read": price.cache_read,
            },
        }

    ids: dict[str, str] = {}
    public = []
    for account, cfg in settings.providers.items():
        for name, entry in cfg.models.items():
            full = f"{account}/{name}"
            pid = model_entry(entry).id
            ids[full] = pid
            public.append({"model": full, "provider": account, "provider_model": pid})
    for item in public:
        item.update(target_state(item["model"], item["provider_model"]))
    virtual = []
    for name, vm in settings.models.items():
        targets = [
            {
                "model": t.model,
                "priority": t.priority,
                "weight": t.weight,
                **target_state(t.model, ids.get(t.model)),
            }
            for t in vm.targets
        ]
        virtual.append({"model": name, "strategy": vm.strategy, "targets": targets})
    return {"models": public, "virtual_models": virtual}
