"""Who pays for a call served by an account: its API key, or the caller's subscription.

An Anthropic account with ``auth: passthrough`` forwards the caller's own credential (a
Claude Max, Team or Enterprise seat's OAuth token): the seat pays, not the gateway's API
key. Such calls are still priced at the list price for reporting (the usage row's
``cost_usd``, with ``billing`` ``subscription``), and count against USD budgets only when
the account sets ``budget_subscription: true``.
"""

from __future__ import annotations

from ..config import AnthropicProviderConfig, Settings

__all__ = ["SUBSCRIPTION", "account_billing"]

#: ``UsageRecord.billing`` of a call the caller's subscription paid for.
SUBSCRIPTION = "subscription"


def account_billing(settings: Settings, account: str) -> tuple[str | None, bool]:
    """``(billing, budgeted)`` for calls served by ``account``: the usage row's ``billing``
    (None: the account's API key at the list price) and whether the cost counts against
    budgets. An unknown account (a refused call) is ``(None, True)``."""
    cfg = settings.providers.get(account)
    if isinstance(cfg, AnthropicProviderConfig) and cfg.auth == "passthrough":
        return SUBSCRIPTION, cfg.budget_subscription
    return None, True
