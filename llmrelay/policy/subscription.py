"""Who pays for a call served by an account: its API key, or the caller's subscription.

An Anthropic account with ``auth: passthrough`` forwards the caller's own credential (a
Claude Max, Team or Enterprise seat's OAuth token): the seat pays, not the gateway's API
key. Such calls are still priced at the list price for reporting (the usage row's
``cost_usd``), and are kept out of USD budgets: no budget hold when every account that may
serve the call is such an account, a row ``billing`` of :data:`SUBSCRIPTION` that budget
spend sums leave out (``stores/_usage_sql.py``). An account with
``budget_subscription: true`` counts them like any call (``billing``
:data:`SUBSCRIPTION_BUDGETED`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import AnthropicProviderConfig, Settings

__all__ = ["SUBSCRIPTION", "SUBSCRIPTION_BUDGETED", "account_billing", "budgeted"]

#: ``UsageRecord.billing`` of a call the caller's subscription paid for, outside budgets.
SUBSCRIPTION = "subscription"
#: The same, from an account with ``budget_subscription: true``: counted in budgets.
SUBSCRIPTION_BUDGETED = "subscription_budgeted"


def account_billing(settings: Settings, account: str) -> tuple[str | None, bool]:
    """``(billing, budgeted)`` for calls served by ``account``: the usage row's ``billing``
    (None: the account's API key at the list price) and whether the cost counts against
    budgets. An unknown account (a refused call) is ``(None, True)``."""
    cfg = settings.providers.get(account)
    if isinstance(cfg, AnthropicProviderConfig) and cfg.auth == "passthrough":
        if cfg.budget_subscription:
            return SUBSCRIPTION_BUDGETED, True
        return SUBSCRIPTION, False
    return None, True


def budgeted(settings: Settings, accounts: Sequence[str]) -> bool:
    """Whether a call that ``accounts`` may serve takes budget holds: False only when every
    one of them is a subscription account outside budgets."""
    return any(account_billing(settings, a)[1] for a in accounts) or not accounts
