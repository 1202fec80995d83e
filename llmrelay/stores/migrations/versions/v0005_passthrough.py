"""The native passthrough: usage rows say whether their tokens are known and who pays;
virtual keys can name the accounts the passthrough may reach.

- ``usage`` gains ``tokens_known`` (false when the provider's answer carried no usage, a
  file download or a batch listing through the passthrough: the token columns then hold 0
  standing for *unknown*, not a count, and ``cost_usd`` is NULL; NULL on older rows, whose
  tokens are all known) and ``billing`` (NULL: the account's API key pays at the list
  price; ``subscription``: the caller's own Claude subscription paid, the cost is priced
  for reporting only and left out of budget spend; ``subscription_budgeted``: the same,
  counted in budgets; ``batch``: Message Batches results, priced at the batch discount).
- ``virtual_keys`` gains ``allowed_accounts`` (a JSON list of provider account names the
  native passthrough may reach; NULL: the accounts of the key's models).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    boolean = "BOOLEAN" if op.get_bind().dialect.name == "postgresql" else "INTEGER"
    op.execute(f"ALTER TABLE usage ADD COLUMN tokens_known {boolean}")
    op.execute("ALTER TABLE usage ADD COLUMN billing TEXT")
    op.execute("ALTER TABLE virtual_keys ADD COLUMN allowed_accounts TEXT")


def downgrade() -> None:
    op.execute("ALTER TABLE virtual_keys DROP COLUMN allowed_accounts")
    op.execute("ALTER TABLE usage DROP COLUMN billing")
    op.execute("ALTER TABLE usage DROP COLUMN tokens_known")
