"""Budgets: USD caps per key and per team over a calendar period (UTC).

Before a call its worst-case cost (the input estimate at the input price plus
``max_tokens`` at the output price) is reserved against each budget that applies; the
call is admitted only if ``spent + reserved + worst case <= budget`` — the single
comparison, made by the counter store (:mod:`llmrelay.stores.counters`) in the same atomic
``admit`` as the rate limits. When the call ends the reservation is replaced by the actual
cost, so concurrent calls can never spend more than the budget by more than the error of
one call's input estimate. A budget in ``audit`` mode never refuses: a call that would not
fit is logged and still counted.

Spend lives in the counter store (in-process or Redis) under a key per period; when a
period's counter does not exist yet (first call of the period, or a restart), it is seeded
from the usage store's recorded spend for the period, read as
:class:`~llmrelay.policy.spend.RecordedSpend` says: one query per budget at a time, no call
waiting longer than ``governance.store_timeout_s``. When the usage store does not answer,
the counter is seeded with the last figure this process read or saw plus what it settled
since. When nothing was ever known of the budget this period, fail-open seeds it from $0
(plus this process's settles) with a warning naming the budget; ``fail_closed`` refuses the
call with 503 until the usage store answers.
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from ..errors import BudgetExceededError, ServiceUnavailable
from ..stores.counters import BudgetState, CounterStore, Hold, Settle
from ..stores.keys import BudgetSpec
from ..stores.usage import UsageStore
from .pricing import to_micro_usd
from .spend import RecordedSpend

__all__ = ["BudgetHold", "Budgets", "Period", "Reservation", "period_of"]

log = logging.getLogger("llmrelay.budget")

MICRO = 1_000_000


@dataclass(slots=True, frozen=True)
class Period:
    """A budget period: ``start``/``end`` in Unix seconds, ``label`` like ``2026-11``."""

    start: float
    end: float
    label: str


def period_of(period: str, now: float) -> Period:
    """The calendar period (UTC; weeks start on Monday) that contains ``now``."""
    t = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
        label = start.strftime("%Y-%m-%d")
    elif period == "week":
        start = (t - timedelta(days=t.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=7)
        label = start.strftime("%G-W%V")
    else:
        start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(t.year, t.month)[1]
        end = start + timedelta(days=days)
        label = start.strftime("%Y-%m")
    return Period(start.timestamp(), end.timestamp(), label)


@dataclass(slots=True)
class Reservation:
    """One budget's hold for one call; ``reserved`` in micro-USD (0 when audit mode let an
    over-budget call through)."""

    key: str
    reserved: int
    ttl_s: int


@dataclass(slots=True, frozen=True)
class BudgetHold:
    """A budget that applies to a call: the :class:`~llmrelay.stores.counters.Hold` to ask
    the counter store for, and what a refusal or an audit line says about it."""

    scope: Literal["key", "team"]
    name: str
    spec: BudgetSpec
    period: Period
    hold: Hold


class Budgets:
    """Budget holds, refusals and settles over a counter store; seeds each period's counter
    from ``usage`` (waiting at most ``store_timeout_s`` seconds for it)."""

    def __init__(
        self,
        counters: CounterStore,
        usage: UsageStore | None,
        *,
        store_timeout_s: float = 0.25,
        fail_closed: bool = False,
    ) -> None:
        self._counters = counters
        self._fail_closed = fail_closed
        self._seeded: set[str] = set()
        #: The recorded spend per budget key and its single-flight reads.
        self.spend = RecordedSpend(usage, timeout_s=store_timeout_s)

    def forget_seeds(self) -> None:
        """Seed every budget again on its next call (the counter store changed or lost data)."""
        self._seeded.clear()

    async def seed_local(self, store: CounterStore) -> None:
        """Seed every budget this process knows of into ``store`` (the in-process counters
        calls just moved to) with the last spend it knew, before any call is served there.
        ``store`` must not suspend in :meth:`~CounterStore.seed` (the in-process store does
        not), so no call can reach it half seeded."""
        now = time.time()
        figures = self.spend.figures(now)
        for key, figure, until in figures:
            await store.seed(key, figure, max(1, int(until - now)))
            self._seeded.add(key)
        log.warning(
            "budgets counted in process from the last spend this instance knew",
            extra={"budgets": len(figures)},
        )

    async def prepare(
        self,
        scope: Literal["key", "team"],
        name: str,
        spec: BudgetSpec,
        worst_case_usd: float,
        now: float,
    ) -> BudgetHold:
        """The hold of ``worst_case_usd`` against ``scope`` (``key`` or ``team``) ``name``'s
        budget for the period of ``now``. Seeds the period's spend first, on its first call
        in this process (and after the counter store changed).

        Raises:
            ServiceUnavailable: the period's spend is unknown, the usage store does not
                answer and ``fail_closed`` is set.
            Exception: the counter store's error (the caller's failure policy decides).
        """
        period = period_of(spec.period, now)
        key = f"bg:{scope}:{name}:{spec.period}:{period.label}"
        ttl = int(period.end - now) + 86400
        if key not in self._seeded:
            await self._seed(key, scope, name, period, ttl)
        amount = to_micro_usd(max(0.0, worst_case_usd))
        limit = round(spec.usd * MICRO)
        hold = Hold(key, limit, amount, ttl, enforce=spec.mode != "audit")
        return BudgetHold(scope, name, spec, period, hold)

    def outcome(
        self, holds: Sequence[BudgetHold], states: Sequence[BudgetState]
    ) -> list[Reservation]:
        """The reservations of a call from the counter store's answer for its ``holds``
        (``states[i]`` for ``holds[i]``; there may be fewer states than holds after a
        refusal). Logs each audit-mode budget the call did not fit. Each state's ``spent``
        is remembered as the budget's known figure.

        Raises:
            BudgetExceededError: an enforced budget had no room for the call.
        """
        reservations: list[Reservation] = []
        for b, state in zip(holds, states, strict=False):
            hold = b.hold
            self.spend.observe(hold.key, state.spent, b.period.end + 86400)
            if state.ok:
                reservations.append(Reservation(hold.key, hold.amount, hold.ttl_s))
                continue
            message = _spent_message(b.scope, b.name, b.spec, state, hold.amount, b.period)
            if hold.enforce:
                raise BudgetExceededError(message, b.scope)
            log.warning("budget exceeded (audit mode, call allowed)", extra={"detail": message})
            reservations.append(Reservation(hold.key, 0, hold.ttl_s))
        return reservations

    def settles(self, reservations: Sequence[Reservation], actual_usd: float) -> list[Settle]:
        """Replace each hold by the call's actual cost (also added to the known figures)."""
        actual = to_micro_usd(max(0.0, actual_usd))
        for r in reservations:
            self.spend.add(r.key, actual)
        return [Settle(r.key, r.reserved, actual, r.ttl_s) for r in reservations]

    async def _seed(
        self, key: str, scope: Literal["key", "team"], name: str, period: Period, ttl: int
    ) -> None:
        answered = await self.spend.read(key, scope, name, period.start, period.end + 86400)
        figure = self.spend.known(key)
        if figure is None and self._fail_closed:
            # Never read nor seen this period, and the usage store does not answer.
            raise ServiceUnavailable(
                f"budget of {scope} {name!r}: its spend this period is unknown and the"
                " database does not answer; refusing calls (governance.fail_closed is true)",
                headers={"retry-after": "1"},
            )
        created = await self._counters.seed(key, figure or 0, ttl)
        self._seeded.add(key)
        if created and figure is None and not answered:
            # RecordedSpend logged the outage once; this budget has no figure to go on.
            log.warning(
                "budget %s seeded at $0: its spend this period was never read and the usage"
                " store is unreachable; it counts only what this instance spends from now"
                " (governance.fail_closed: true refuses such calls instead)",
                key,
                extra={"budget": key},
            )


def _spent_message(
    scope: str, name: str, spec: BudgetSpec, state: BudgetState, amount: int, period: Period
) -> str:
    resets = datetime.fromtimestamp(period.end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"budget exceeded: {scope} {name!r} has a budget of ${_usd(spec.usd)} per {spec.period};"
        f" ${state.spent / MICRO:.4f} spent and ${state.reserved / MICRO:.4f} held by calls in"
        f" flight, and this call could cost up to ${amount / MICRO:.4f}. It resets at {resets}."
    )


def _usd(amount: float) -> str:
    """Dollars with cents, or enough digits for a budget under a dollar ($0.001)."""
    return f"{amount:.2f}" if amount >= 1 else f"{amount:.4g}"
