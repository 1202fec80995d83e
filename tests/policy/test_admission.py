"""The policy step on in-process counters: one counter store call to admit, one to settle,
all or nothing across rate limits and budgets, refusals worded as before."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import pytest

from llmrelay.core.usage import Usage
from llmrelay.errors import BudgetExceededError, RateLimitedError
from llmrelay.policy.admission import Policy
from llmrelay.policy.auth import Principal
from llmrelay.policy.budget import period_of
from llmrelay.policy.pricing import Price, PriceTable
from llmrelay.stores.counters import Acquired, Admitted, BudgetState, Hold, Settle, Window
from llmrelay.stores.keys import BudgetSpec, Limits
from llmrelay.stores.memory_counters import MemoryCounterStore

#: $1 per output token, input free: a call's worst case is its max_tokens in USD.
PRICES = PriceTable({"m-1": Price(0, 1_000_000, 0, 0)}, shipped={})
MONTH = period_of("month", time.time()).label


class Recording(MemoryCounterStore):
    """In-process counters that note which methods were called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def acquire(self, windows: Sequence[Window], amounts: Sequence[int]) -> Acquired:
        self.calls.append("acquire")
        return await super().acquire(windows, amounts)

    async def admit(
        self, windows: Sequence[Window], amounts: Sequence[int], holds: Sequence[Hold]
    ) -> Admitted:
        self.calls.append("admit")
        return await super().admit(windows, amounts, holds)

    async def release(
        self,
        windows: Sequence[Window],
        amounts: Sequence[int],
        at: float | None,
        settles: Sequence[Settle],
    ) -> None:
        self.calls.append("release")
        await super().release(windows, amounts, at, settles)

    async def reserve(self, key: str, limit: int, amount: int, ttl_s: int) -> BudgetState:
        self.calls.append("reserve")
        return await super().reserve(key, limit, amount, ttl_s)

    async def seed(self, key: str, spent: int, ttl_s: int) -> bool:
        self.calls.append("seed")
        return await super().seed(key, spent, ttl_s)

    async def held(self, key: str) -> tuple[int, int]:
        """(spent, reserved) of a budget key, read without noting a call."""
        state = await super().reserve(key, 10**15, 0, 3600)
        return state.spent, state.reserved


def policy(counters: Recording, team_budget: BudgetSpec | None = None) -> Policy:
    return Policy(
        counters,
        None,
        PRICES,
        team_limits={"ml": Limits(rpm=100)},
        team_budgets={"ml": team_budget or BudgetSpec(5.0)},
        model_limits={},
    )


ALICE = Principal(
    "alice", "vk_1", team="ml", limits=Limits(rpm=2, tpm=10_000), budget=BudgetSpec(10.0)
)


def body(max_tokens: int) -> dict[str, object]:
    return {"model": "m", "max_tokens": max_tokens}


def test_no_limits_and_no_budgets_cost_no_await() -> None:
    counters = Recording()
    coro = policy(counters).admit(Principal("bob", "vk_2"), "m", ["m-1"], body(3), 400)
    with pytest.raises(StopIteration) as done:
        coro.send(None)  # finishes without ever suspending
    assert done.value.value is None
    assert counters.calls == []


def test_one_counter_call_to_admit_and_one_to_settle() -> None:
    async def main() -> None:
        counters = Recording()
        p = policy(counters)
        admission = await p.admit(ALICE, "m", ["m-1"], body(3), 400)
        assert admission is not None
        assert counters.calls == ["seed", "seed", "admit"]  # seeds: first call of the period
        assert [r.reserved for r in admission.reservations] == [3_000_000, 3_000_000]
        p.settle_soon(admission, Usage(input_tokens=20, output_tokens=2), 2.0)
        await p.aclose()
        assert counters.calls[3:] == ["release"]
        assert await counters.held(f"bg:key:vk_1:month:{MONTH}") == (2_000_000, 0)
        assert await counters.held(f"bg:team:ml:month:{MONTH}") == (2_000_000, 0)
        counters.calls.clear()
        assert await p.admit(ALICE, "m", ["m-1"], body(1), 400) is not None
        assert counters.calls == ["admit"]  # seeded already
        # The first estimate (400 bytes / 4) was corrected to the 22 tokens used; the second
        # call's 100 still count.
        tpm = Window("rl:key:vk_1:tpm", 10_000, 60, 1)
        assert (await counters.acquire([tpm], [10_000 - 22 - 100])).ok
        assert not (await counters.acquire([tpm], [1])).ok

    asyncio.run(main())


def test_a_budget_refusal_takes_no_rate_limit_room_nor_other_holds() -> None:
    async def main() -> None:
        counters = Recording()
        p = policy(counters)
        assert await p.admit(ALICE, "m", ["m-1"], body(3), 400) is not None
        with pytest.raises(BudgetExceededError) as refused:
            await p.admit(ALICE, "m", ["m-1"], body(3), 400)  # the team's $5 has $2 left
        assert str(refused.value).startswith(
            "budget exceeded: team 'ml' has a budget of $5.00 per month; $0.0000 spent and"
            " $3.0000 held by calls in flight, and this call could cost up to $3.0000."
        )
        assert refused.value.headers == {"x-should-retry": "false"}
        assert await counters.held(f"bg:key:vk_1:month:{MONTH}") == (0, 3_000_000)
        # rpm is 2: the refused call did not count, so one more passes, then none.
        assert await p.admit(ALICE, "m", ["m-1"], body(1), 400) is not None
        with pytest.raises(RateLimitedError, match=r"^rate limit: key vk_1 allows 2 requests"):
            await p.admit(ALICE, "m", ["m-1"], body(1), 400)
        assert await counters.held(f"bg:team:ml:month:{MONTH}") == (0, 4_000_000)
        assert "reserve" not in counters.calls and "acquire" not in counters.calls

    asyncio.run(main())


def test_audit_budget_logs_and_admits_without_holding(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        counters = Recording()
        p = policy(counters, BudgetSpec(1.0, mode="audit"))
        admission = await p.admit(ALICE, "m", ["m-1"], body(3), 400)
        assert admission is not None
        assert [r.reserved for r in admission.reservations] == [3_000_000, 0]
        assert [r.getMessage() for r in caplog.records] == [
            "budget exceeded (audit mode, call allowed)"
        ]
        p.settle_soon(admission, Usage(output_tokens=3), 3.0)
        await p.aclose()
        assert await counters.held(f"bg:team:ml:month:{MONTH}") == (3_000_000, 0)

    caplog.set_level(logging.WARNING, logger="llmrelay.budget")
    asyncio.run(main())
