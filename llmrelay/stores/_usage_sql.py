"""SQL for the usage table, shared by the SQLite and PostgreSQL usage stores.

Statements are written once with ``?`` placeholders and rendered for a driver's parameter
style (sqlite3 ``?``, psycopg ``%s``). Columns follow :class:`UsageRecord`'s fields, so a
selected row is ``UsageRecord(*row)``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from .usage import SummaryField, UsageRecord, UsageSummaryRow

__all__ = ["COLUMNS", "POSTGRES", "ROW", "SQLITE", "UsageSQL", "summary_rows"]

COLUMNS = tuple(f.name for f in fields(UsageRecord))
# attrgetter, not dataclasses.astuple: astuple deep-copies every field (13.7 us a row
# against 0.3 us), and the writer thread holds the GIL while it does.
ROW = operator.attrgetter(*COLUMNS)

_GROUP_COLUMNS = {"key": "key_name", "team": "COALESCE(team, '')", "model": "model"}
_TOTALS = (
    "COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(input_tokens),"
    " SUM(output_tokens), SUM(cache_creation_input_tokens), SUM(cache_read_input_tokens),"
    " SUM(cost_usd), AVG(latency_s)"
)
_SPEND_COLUMNS = {"key": "key_id", "team": "team"}


class UsageSQL:
    """The usage statements in one driver's parameter style; ``day`` is the SQL expression
    for the UTC date ``YYYY-MM-DD`` of ``ts`` (Unix seconds)."""

    __slots__ = ("day", "insert", "param", "select_rows")

    def __init__(self, param: str, day: str) -> None:
        self.param = param
        self.day = day
        marks = ", ".join("?" for _ in COLUMNS)
        self.insert = self._q(f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({marks})")
        self.select_rows = f"SELECT {', '.join(COLUMNS)} FROM usage ORDER BY id"

    def _q(self, sql: str) -> str:
        return sql if self.param == "?" else sql.replace("?", self.param)

    def summary(
        self, group_by: Sequence[SummaryField], since: float | None
    ) -> tuple[str, list[Any]]:
        """The summary query and its parameters. Raises ``ValueError`` for an unknown field."""
        columns = [self._group_column(f) for f in group_by]
        sql = f"SELECT {', '.join([*columns, _TOTALS])} FROM usage"
        params: list[Any] = []
        if since is not None:
            sql += " WHERE ts >= ?"
            params.append(since)
        # Without GROUP BY an aggregate returns one row even over no rows; HAVING drops it.
        sql += f" GROUP BY {', '.join(columns)}" if columns else " HAVING COUNT(*) > 0"
        return self._q(sql), params

    def _group_column(self, name: str) -> str:
        if name == "day":
            return self.day
        try:
            return _GROUP_COLUMNS[name]
        except KeyError:
            raise ValueError(
                f"cannot group usage by {name!r}: use key, team, model or day"
            ) from None

    def spend(self, scope: str) -> str:
        """``SUM(cost_usd)`` of one key id or team since a time; parameters (name, since)."""
        try:
            column = _SPEND_COLUMNS[scope]
        except KeyError:
            raise ValueError(f"unknown spend scope {scope!r}: use key or team") from None
        return self._q(f"SELECT SUM(cost_usd) FROM usage WHERE {column} = ? AND ts >= ?")


def summary_rows(rows: Sequence[Sequence[Any]], n: int) -> list[UsageSummaryRow]:
    """Summary rows from the query's result (``n`` group columns first), ordered by group;
    sorted here so every database orders alike, whatever its collation."""
    out = [
        UsageSummaryRow(
            group=tuple(str(v) for v in row[:n]),
            requests=int(row[n]),
            errors=int(row[n + 1]),
            input_tokens=int(row[n + 2]),
            output_tokens=int(row[n + 3]),
            cache_creation_input_tokens=int(row[n + 4]),
            cache_read_input_tokens=int(row[n + 5]),
            cost_usd=None if row[n + 6] is None else float(row[n + 6]),
            avg_latency_s=float(row[n + 7]),
        )
        for row in rows
    ]
    out.sort(key=lambda r: r.group)
    return out


SQLITE = UsageSQL("?", "strftime('%Y-%m-%d', ts, 'unixepoch')")
POSTGRES = UsageSQL("%s", "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
