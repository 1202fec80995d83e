"""The hourly usage rollup (``usage_hourly``): what the console's charts read.

One row per UTC hour (``hour``: Unix seconds of the hour's start), key name, team (``""``
for none), public model and provider account, with the sums of that hour's usage rows. The
usage stores add to it in the same transaction as the rows themselves (one upsert per group
of a batch), so the rollup never disagrees with the bill; migration 0004 fills it from the
rows written before it existed. A chart over 30 days reads at most 720 hours x the groups
active in them, not every call: on 1 million usage rows a day's or a month's series is an
index range scan of the rollup (tests/console/test_rollup_scale.py checks the plans).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from .usage import Breakdown, SeriesPoint, Totals, UsageRecord

__all__ = [
    "BREAKDOWN_COLUMNS",
    "POSTGRES_ROLLUP",
    "SQLITE_ROLLUP",
    "RollupSQL",
    "breakdown_rows",
    "rollup_rows",
    "series_points",
]

#: What the breakdown may group by, and its column.
BreakdownBy = Literal["key", "team", "model", "provider"]
BREAKDOWN_COLUMNS: dict[str, str] = {
    "key": "key_name",
    "team": "team",
    "model": "model",
    "provider": "provider",
}
_GROUP = ("hour", "key_name", "team", "model", "provider")
_SUMS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cost_usd",
    "latency_s",
)
_SELECT_SUMS = ", ".join(f"SUM({c})" for c in _SUMS)


def rollup_rows(records: Sequence[UsageRecord]) -> list[tuple[Any, ...]]:
    """The upsert rows of a batch: one per (hour, key name, team, model, provider), sorted by
    that group, in the column order of :attr:`RollupSQL.upsert`. Raises ``TypeError`` or
    ``ValueError`` for a row whose ``ts`` is not a finite number (the stores treat that as a
    refused row)."""
    groups: dict[tuple[Any, ...], list[float]] = {}
    for r in records:
        if not math.isfinite(r.ts):
            raise ValueError(f"usage row ts {r.ts!r} is not a finite number")
        group = (int(r.ts // 3600) * 3600, r.key_name, r.team or "", r.model, r.provider)
        sums = groups.get(group)
        if sums is None:
            sums = groups[group] = [0, 0, 0, 0, 0, 0, 0.0, 0.0]
        sums[0] += 1
        sums[1] += 1 if r.status >= 400 else 0
        sums[2] += r.input_tokens
        sums[3] += r.output_tokens
        sums[4] += r.cache_creation_input_tokens
        sums[5] += r.cache_read_input_tokens
        sums[6] += r.cost_usd or 0.0
        sums[7] += r.latency_s
    # In group order: writers of several workers or instances then lock the rollup rows they
    # share in the same order, so their upserts wait for each other instead of deadlocking.
    return [(*g, *(int(x) for x in s[:6]), s[6], s[7]) for g, s in sorted(groups.items())]


class RollupSQL:
    """The rollup statements in one driver's parameter style (``?`` or ``%s``); ``hour`` is
    the SQL expression for the start of ``ts``'s UTC hour as an integer (the backfill)."""

    __slots__ = ("backfill", "param", "upsert")

    def __init__(self, param: str, hour: str) -> None:
        self.param = param
        columns = (*_GROUP, *_SUMS)
        marks = ", ".join("?" for _ in columns)
        adds = ", ".join(f"{c} = usage_hourly.{c} + excluded.{c}" for c in _SUMS)
        self.upsert = self._q(
            f"INSERT INTO usage_hourly ({', '.join(columns)}) VALUES ({marks})"
            f" ON CONFLICT ({', '.join(_GROUP)}) DO UPDATE SET {adds}"
        )
        self.backfill = (
            f"INSERT INTO usage_hourly ({', '.join(columns)})"
            f" SELECT {hour}, key_name, COALESCE(team, ''), model, provider, COUNT(*),"
            " SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(input_tokens),"
            " SUM(output_tokens), SUM(cache_creation_input_tokens),"
            " SUM(cache_read_input_tokens), COALESCE(SUM(cost_usd), 0), SUM(latency_s)"
            f" FROM usage GROUP BY {hour}, key_name, COALESCE(team, ''), model, provider"
        )

    def _q(self, sql: str) -> str:
        return sql if self.param == "?" else sql.replace("?", self.param)

    def series(self, bucket_s: int, since: int, until: int) -> tuple[str, list[Any]]:
        """Totals per bucket of ``bucket_s`` seconds (a multiple of 3600) over the hours in
        [``since``, ``until``), oldest first; buckets without calls are absent."""
        # The bucket is a literal (an int, checked): PostgreSQL groups by an expression only
        # when it is the selected one, and two parameters are two expressions to it.
        size = int(bucket_s)
        if size <= 0 or size % 3600:
            raise ValueError(f"bucket_s: expected a positive multiple of 3600, got {bucket_s!r}")
        sql = (
            f"SELECT (hour / {size}) * {size}, {_SELECT_SUMS} FROM usage_hourly"
            f" WHERE hour >= ? AND hour < ? GROUP BY (hour / {size}) * {size} ORDER BY 1"
        )
        return self._q(sql), [since, until]

    def breakdown(self, by: str, since: int, until: int) -> tuple[str, list[Any]]:
        """Totals per value of ``by`` over [``since``, ``until``), most spent first.
        Raises ``ValueError`` for an unknown ``by``."""
        try:
            column = BREAKDOWN_COLUMNS[by]
        except KeyError:
            raise ValueError(
                f"cannot break usage down by {by!r}: use {', '.join(BREAKDOWN_COLUMNS)}"
            ) from None
        sql = (
            f"SELECT {column}, {_SELECT_SUMS} FROM usage_hourly"
            f" WHERE hour >= ? AND hour < ? GROUP BY {column}"
        )
        return self._q(sql), [since, until]


def series_points(rows: Sequence[Sequence[Any]]) -> list[SeriesPoint]:
    """The points of a :meth:`RollupSQL.series` result."""
    return [SeriesPoint(int(r[0]), Totals.of(r[1:])) for r in rows]


def breakdown_rows(rows: Sequence[Sequence[Any]]) -> list[Breakdown]:
    """The groups of a :meth:`RollupSQL.breakdown` result, by cost then requests, largest
    first (sorted here so every database orders alike)."""
    out = [Breakdown(str(r[0]), Totals.of(r[1:])) for r in rows]
    out.sort(key=lambda b: (-b.totals.cost_usd, -b.totals.requests, b.value))
    return out


SQLITE_ROLLUP = RollupSQL("?", "CAST(ts / 3600 AS INTEGER) * 3600")
POSTGRES_ROLLUP = RollupSQL("%s", "CAST(floor(ts / 3600) AS BIGINT) * 3600")
