"""Which provider accounts a key may reach through the native passthrough.

A key's ``allowed_accounts`` (config keys) names them outright. Without it, a key limited
to some models may reach the accounts that serve them (``anthropic/claude`` grants
``anthropic``; a virtual model grants the accounts of its targets), and a key without a
model list may reach every account. Nothing here reads a store: the caller passes what the
routing table says a model name is served by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..errors import InvalidRequestError, PermissionDeniedError
from .auth import Principal

__all__ = ["ACCOUNT_HEADER", "check_account", "reachable", "sole_account"]

#: The header naming the account of an Anthropic SDK path that does not name one
#: (``/v1/messages/batches``, ``/v1/files``).
ACCOUNT_HEADER = "x-llmrelay-account"

#: The accounts serving a public model name (empty for a name nothing serves).
AccountsOf = Callable[[str], Iterable[str]]


def reachable(principal: Principal, accounts_of: AccountsOf) -> frozenset[str] | None:
    """The accounts ``principal`` may reach; None for every account."""
    if principal.accounts is not None:
        return principal.accounts
    if principal.models is None:
        return None
    return frozenset(a for m in principal.models for a in accounts_of(m))


def check_account(principal: Principal, account: str, accounts_of: AccountsOf) -> None:
    """Raises :class:`PermissionDeniedError` (403) unless ``principal`` may reach
    ``account``."""
    allowed = reachable(principal, accounts_of)
    if allowed is not None and account not in allowed:
        shown = ", ".join(sorted(allowed)) or "none"
        raise PermissionDeniedError(
            f"gateway key {principal.name!r} may not use provider account {account!r} "
            f"(allowed: {shown})"
        )


def sole_account(
    principal: Principal, candidates: Iterable[str], accounts_of: AccountsOf, path: str
) -> str:
    """The one account among ``candidates`` (the accounts whose API has ``path``) that
    ``principal`` may reach, for a ``path`` that names none.

    Raises:
        InvalidRequestError: none or several (400, naming :data:`ACCOUNT_HEADER`).
    """
    allowed = reachable(principal, accounts_of)
    mine = sorted(a for a in candidates if allowed is None or a in allowed)
    if len(mine) == 1:
        return mine[0]
    which = f"one of: {', '.join(mine)}" if mine else "an account this key may use"
    raise InvalidRequestError(
        f"{path}: name the provider account with the {ACCOUNT_HEADER} header ({which})"
    )
