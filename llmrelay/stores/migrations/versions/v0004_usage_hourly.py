"""The hourly usage rollup the web console's charts read (docs/console.md).

- ``usage_hourly``: one row per UTC hour (``hour``, Unix seconds of its start), key name,
  team (``''`` for none), public model and provider account, with the sums of that hour's
  calls: requests, errors (status >= 400), the four token counts, ``cost_usd`` (USD, rows
  without a price count 0) and ``latency_s`` (seconds, summed). Its primary key starts with
  ``hour``, so a time range is an index range scan. The usage stores add to it in the
  transaction that writes the rows (``llmrelay/stores/_rollup_sql.py``).
- Filled here from the usage rows already written.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

from llmrelay.stores._rollup_sql import POSTGRES_ROLLUP, SQLITE_ROLLUP

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _statements(pg: bool) -> list[str]:
    real = "DOUBLE PRECISION" if pg else "REAL"
    bigint = "BIGINT" if pg else "INTEGER"
    return [
        f"""
CREATE TABLE usage_hourly (
    hour {bigint} NOT NULL,
    key_name TEXT NOT NULL,
    team TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    requests {bigint} NOT NULL,
    errors {bigint} NOT NULL,
    input_tokens {bigint} NOT NULL,
    output_tokens {bigint} NOT NULL,
    cache_creation_input_tokens {bigint} NOT NULL,
    cache_read_input_tokens {bigint} NOT NULL,
    cost_usd {real} NOT NULL,
    latency_s {real} NOT NULL,
    PRIMARY KEY (hour, key_name, team, model, provider)
)""",
        (POSTGRES_ROLLUP if pg else SQLITE_ROLLUP).backfill,
    ]


def upgrade() -> None:
    for statement in _statements(op.get_bind().dialect.name == "postgresql"):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE usage_hourly")
