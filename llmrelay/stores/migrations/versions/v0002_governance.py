"""Governance: usage rows carry key id, team, cost and attempts; virtual keys and secrets.

- ``usage`` gains ``key_id``, ``team``, ``cost_usd`` (USD, NULL when the model has no
  price), ``attempts`` (NOT NULL, 1 for existing rows) and ``attempt_log`` (JSON text), and
  two indexes for budget queries that sum one key's or one team's cost since a time.
- ``virtual_keys``: one row per key; ``models`` is a JSON array (empty: every model);
  limits are per-minute/hour/day columns (NULL: unlimited); times are Unix seconds;
  ``revision`` is the store revision of the key's last write.
- ``key_secrets``: the SHA-256 digest of each valid secret; ``expires_at`` set on a
  rotated-out secret.
- ``key_revision``: one row, the store-wide revision counter. A row, not a sequence: a
  writer's ``UPDATE`` holds its lock until commit, so revisions commit in order and a reader
  that has seen revision N has seen every write up to N (a sequence hands out numbers that
  can commit out of order, and a cache asking "after N" would skip the late one).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _statements(pg: bool) -> list[str]:
    real = "DOUBLE PRECISION" if pg else "REAL"
    bigint = "BIGINT" if pg else "INTEGER"
    blob = "BYTEA" if pg else "BLOB"
    return [
        "ALTER TABLE usage ADD COLUMN key_id TEXT",
        "ALTER TABLE usage ADD COLUMN team TEXT",
        f"ALTER TABLE usage ADD COLUMN cost_usd {real}",
        "ALTER TABLE usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE usage ADD COLUMN attempt_log TEXT",
        "CREATE INDEX usage_key_id_ts ON usage (key_id, ts)",
        "CREATE INDEX usage_team_ts ON usage (team, ts)",
        f"""
CREATE TABLE virtual_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    team TEXT,
    models TEXT NOT NULL,
    rpm {bigint},
    rph {bigint},
    rpd {bigint},
    tpm {bigint},
    tph {bigint},
    tpd {bigint},
    budget_usd {real},
    budget_period TEXT,
    budget_mode TEXT,
    created_at {real} NOT NULL,
    expires_at {real},
    revoked_at {real},
    revision {bigint} NOT NULL
)""",
        "CREATE INDEX virtual_keys_revision ON virtual_keys (revision)",
        f"""
CREATE TABLE key_secrets (
    digest {blob} PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES virtual_keys (id),
    expires_at {real}
)""",
        "CREATE INDEX key_secrets_key_id ON key_secrets (key_id)",
        f"""
CREATE TABLE key_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision {bigint} NOT NULL
)""",
        "INSERT INTO key_revision (id, revision) VALUES (1, 0)",
    ]


def upgrade() -> None:
    for statement in _statements(op.get_bind().dialect.name == "postgresql"):
        op.execute(statement)


def downgrade() -> None:
    for statement in [
        "DROP TABLE key_revision",
        "DROP TABLE key_secrets",
        "DROP TABLE virtual_keys",
        "DROP INDEX usage_team_ts",
        "DROP INDEX usage_key_id_ts",
        "ALTER TABLE usage DROP COLUMN attempt_log",
        "ALTER TABLE usage DROP COLUMN attempts",
        "ALTER TABLE usage DROP COLUMN cost_usd",
        "ALTER TABLE usage DROP COLUMN team",
        "ALTER TABLE usage DROP COLUMN key_id",
    ]:
        op.execute(statement)
