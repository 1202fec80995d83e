"""The policy step around a call: may this caller call this model now, and at what cost.

:meth:`Policy.admit` runs after the route is resolved and before any provider call:

1. model permission (a key limited to some models gets 403 ``permission_error`` for others);
2. rate limits of the key, its team and the model (429 ``rate_limit_error`` with
   ``retry-after``), see :mod:`llmrelay.policy.limits`;
3. budgets of the key and its team (429, ``x-should-retry: false``; OpenAI surface:
   ``insufficient_quota``), see :mod:`llmrelay.policy.budget`.

Steps 2 and 3 are one atomic :meth:`~llmrelay.stores.counters.CounterStore.admit` (one
Redis round trip): a call refused by a budget has taken no rate-limit room, and the other
way round. A refused call never reaches a provider. :meth:`Policy.settle_soon` runs when
the call ends: one :meth:`~llmrelay.stores.counters.CounterStore.release` corrects the token
estimate to the provider's usage and replaces budget holds by the actual cost, in a
background task so the response is not held for it. A call with no limits and no budgets
costs one set lookup and no await.

When the counter store is unreachable the :class:`~llmrelay.stores.failover_counters.
FailoverCounterStore` serves from in-process counters (fail-open) or raises; raising
becomes 503 here (``governance.fail_closed: true``). A budget's first call of a period
waits at most ``store_timeout_s`` for its recorded spend (see
:mod:`llmrelay.policy.budget`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.usage import Usage
from ..errors import PermissionDeniedError, ServiceUnavailable
from ..stores.counters import CounterStore, Window
from ..stores.failover_counters import CounterStoreUnavailable
from ..stores.keys import BudgetSpec, Limits
from ..stores.usage import UsageStore
from .auth import Principal
from .budget import BudgetHold, Budgets, Reservation
from .limits import LimitSet, amounts_for, limit_set, refusal, token_estimate, tokens_counted
from .pricing import Price, PriceTable, cost, worst_case
from .targets import TargetLimits

__all__ = ["Admission", "Policy"]

log = logging.getLogger("llmrelay.policy")


@dataclass(slots=True)
class Admission:
    """What a call holds: its token windows (to correct the estimate) and budget
    reservations."""

    token_windows: list[Window] = field(default_factory=list)
    estimate: int = 0
    #: When the windows counted the call (the counter store's clock), for settling.
    at: float = 0.0
    reservations: list[Reservation] = field(default_factory=list)


class Policy:
    def __init__(
        self,
        counters: CounterStore,
        usage: UsageStore | None,
        prices: PriceTable,
        *,
        team_limits: Mapping[str, Limits],
        team_budgets: Mapping[str, BudgetSpec],
        model_limits: Mapping[str, Limits],
        store_timeout_s: float = 0.25,
        fail_closed: bool = False,
    ) -> None:
        self.counters = counters
        self.prices = prices
        self.budgets = Budgets(
            counters, usage, store_timeout_s=store_timeout_s, fail_closed=fail_closed
        )
        self._team_limits = {t: limit_set(f"team:{t}", lim) for t, lim in team_limits.items()}
        self._team_budgets = dict(team_budgets)
        self._model_limits = {m: limit_set(f"model:{m}", lim) for m, lim in model_limits.items()}
        self._pending: set[asyncio.Task[None]] = set()
        #: Model limits on the targets of virtual models (set by the app).
        self.targets = TargetLimits(counters, model_limits)

    async def admit(
        self,
        principal: Principal,
        model: str,
        provider_models: Sequence[str],
        body: Mapping[str, Any],
        body_bytes: int,
        *,
        budgets: bool = True,
    ) -> Admission | None:
        """Check a call; None when nothing applies (nothing to settle).

        ``model`` is the public name asked for; ``provider_models`` the provider model ids
        it may be served by (the most expensive prices the worst case); ``body_bytes`` the
        request body's size, for the token estimate. ``budgets`` False leaves the budgets
        out (a call the caller's own subscription pays, see
        :mod:`llmrelay.policy.subscription`); rate limits still apply.

        Raises:
            PermissionDeniedError: the key may not use ``model``.
            RateLimitedError: a rate limit has no room.
            BudgetExceededError: a budget has no room.
            ServiceUnavailable: the counter store is down, or a budget's spend is unknown and
                the database does not answer, and ``fail_closed`` is set.
        """
        self.check_model(principal, model)
        sets: list[LimitSet] = []
        if not principal.limits.is_empty():
            sets.append(limit_set(f"key:{principal.key_id}", principal.limits))
        team = principal.team
        if team is not None and team in self._team_limits:
            sets.append(self._team_limits[team])
        if model in self._model_limits:
            sets.append(self._model_limits[model])
        holds: list[tuple[Literal["key", "team"], str, BudgetSpec]] = []
        if budgets and principal.budget is not None:
            holds.append(("key", principal.key_id, principal.budget))
        if budgets and team is not None and team in self._team_budgets:
            holds.append(("team", team, self._team_budgets[team]))
        if not sets and not holds:
            return None
        estimate = token_estimate(body_bytes)
        try:
            return await self._admit(sets, holds, provider_models, body, estimate)
        except CounterStoreUnavailable as err:
            # Redis under governance.fail_closed, or the supervisor's counter service
            # (--workers N); the error says which.
            raise ServiceUnavailable(
                f"rate limit and budget store unreachable; refusing calls: {err}",
                headers={"retry-after": "1"},
            ) from err

    @staticmethod
    def check_model(principal: Principal, model: str) -> None:
        """Raises :class:`PermissionDeniedError` if the key may not use ``model``."""
        if principal.models is not None and model not in principal.models:
            allowed = ", ".join(sorted(principal.models))
            raise PermissionDeniedError(
                f"gateway key {principal.name!r} may not use model {model!r} (allowed: {allowed})"
            )

    async def _admit(
        self,
        sets: list[LimitSet],
        budgets: list[tuple[Literal["key", "team"], str, BudgetSpec]],
        provider_models: Sequence[str],
        body: Mapping[str, Any],
        estimate: int,
    ) -> Admission:
        """Every window and every budget hold in one counter store call, all or nothing."""
        windows = [w for s in sets for w in s.windows]
        amounts = amounts_for(sets, estimate)
        holds: list[BudgetHold] = []
        if budgets:
            worst = self.worst_case(provider_models, body, estimate)
            now = time.time()
            for scope, name, spec in budgets:
                holds.append(await self.budgets.prepare(scope, name, spec, worst, now))
        result = await self.counters.admit(windows, amounts, [b.hold for b in holds])
        if result.refused_window >= 0:
            raise refusal(sets, result.refused_window, result.retry_after_s, amounts)
        flags = [t for s in sets for t in s.tokens]
        return Admission(
            token_windows=[w for w, t in zip(windows, flags, strict=True) if t],
            estimate=estimate,
            at=result.at,
            reservations=self.budgets.outcome(holds, result.holds),
        )

    def worst_case(
        self, provider_models: Sequence[str], body: Mapping[str, Any], estimate: int
    ) -> float:
        """USD: the input estimate plus ``max_tokens`` (or ``max_completion_tokens``) of
        output at the most expensive of the prices; 0 when none is priced."""
        # The largest output limit the body names: surfaces and providers differ in which of
        # the two fields wins, so the hold takes the larger (4096 when none is usable).
        asked = [
            v
            for v in (body.get("max_tokens"), body.get("max_completion_tokens"))
            if isinstance(v, int) and not isinstance(v, bool) and v > 0
        ]
        max_out = max(asked) if asked else 4096
        prices = [p for p in (self.prices.get(m) for m in provider_models) if p is not None]
        if not prices:
            return 0.0
        return max(worst_case(p, estimate, max_out) for p in prices)

    def cost(self, provider_model: str, usage: Usage) -> float | None:
        """USD for a call's usage at the provider model's price; None when unpriced."""
        price: Price | None = self.prices.get(provider_model)
        if price is None:
            return None
        return cost(
            price,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_creation_input_tokens,
            usage.cache_read_input_tokens,
        )

    def settle_soon(self, admission: Admission, usage: Usage, cost_usd: float | None) -> None:
        """Settle a call's holds in the background (the response is not held for it). A call
        that holds nothing (no token window, no budget) settles nothing: no task."""
        if not admission.token_windows and not admission.reservations:
            return
        task = asyncio.get_running_loop().create_task(self._settle(admission, usage, cost_usd))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self, admission: Admission, usage: Usage, cost_usd: float | None) -> None:
        try:
            windows: list[Window] = []
            delta = 0
            if admission.token_windows:
                delta = tokens_counted(usage) - admission.estimate
                if delta:
                    windows = admission.token_windows
            settles = self.budgets.settles(admission.reservations, cost_usd or 0.0)
            if windows or settles:
                await self.counters.release(windows, [delta] * len(windows), admission.at, settles)
        except Exception as err:
            log.warning(
                "could not settle a call's limits and budgets",
                extra={"error": f"{type(err).__name__}: {err}"},
            )

    async def aclose(self) -> None:
        """Wait for settles in flight."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
