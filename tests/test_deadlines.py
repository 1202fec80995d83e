"""``llmrelay.deadlines``: a deadline in the loop's heap behaves as ``asyncio.timeout_at``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from llmrelay import deadlines
from llmrelay.deadlines import deadline_at

Loop = Callable[[Coroutine[Any, Any, None]], None]
LOOPS: list[Loop] = [asyncio.run, uvloop.run]


@pytest.mark.parametrize("run", LOOPS)
def test_the_deadline_cancels_the_block_with_timeout_error(run: Loop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError), deadline_at(loop.time() + 0.02) as d:
            await asyncio.sleep(5)
        assert d.expired()
        # The task itself is not left cancelled: it goes on.
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        await asyncio.sleep(0)

    run(main())


@pytest.mark.parametrize("run", LOOPS)
def test_a_block_that_ends_in_time_is_untouched(run: Loop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with deadline_at(loop.time() + 0.05) as d:
            await asyncio.sleep(0.001)
        assert not d.expired()
        await asyncio.sleep(0.1)  # its time passes after the block: nothing fires
        assert not d.expired()

    run(main())


@pytest.mark.parametrize("run", LOOPS)
def test_none_and_a_time_already_past(run: Loop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with deadline_at(None) as never:
            await asyncio.sleep(0.01)
        assert not never.expired()
        with pytest.raises(TimeoutError), deadline_at(loop.time() - 1):
            await asyncio.sleep(5)

    run(main())


@pytest.mark.parametrize("run", LOOPS)
def test_reschedule_moves_it_both_ways(run: Loop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with deadline_at(loop.time() + 0.01) as d:
            d.reschedule(loop.time() + 10)
            await asyncio.sleep(0.05)  # the first time passed: no longer the deadline
        assert not d.expired()
        with pytest.raises(TimeoutError), deadline_at(None) as d:
            d.reschedule(loop.time())  # a drain's cut: now
            await asyncio.sleep(5)
        assert d.expired()
        with pytest.raises(RuntimeError):
            d.reschedule(None)

    run(main())


@pytest.mark.parametrize("run", LOOPS)
def test_a_cancel_from_elsewhere_stays_a_cancel(run: Loop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def block() -> None:
            with deadline_at(loop.time() + 10):
                await asyncio.sleep(5)

        task = asyncio.create_task(block())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


@pytest.mark.parametrize("run", LOOPS)
def test_many_blocks_each_get_their_own_deadline(run: Loop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        outcomes: dict[int, str] = {}

        async def block(i: int) -> None:
            # Odd blocks end before their deadline, even ones reach it; deadlines out of order.
            when = loop.time() + (0.01 + (i % 7) * 0.005)
            try:
                with deadline_at(when):
                    await asyncio.sleep(0 if i % 2 else 5)
                outcomes[i] = "done"
            except TimeoutError:
                outcomes[i] = "timeout"

        await asyncio.gather(*(block(i) for i in range(200)))
        assert outcomes == {i: "done" if i % 2 else "timeout" for i in range(200)}

    run(main())


def test_the_heap_is_bounded_by_the_deadlines_in_force() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(5 * deadlines.SLACK):
            with deadline_at(loop.time() + 600):  # far off: never popped by time
                await asyncio.sleep(0)
        heap = deadlines._for_loop(loop)
        assert heap.active == 0
        assert len(heap._entries) <= deadlines.SLACK

    uvloop.run(main())


def test_it_is_used_inside_a_task_once() -> None:
    with pytest.raises(RuntimeError):
        deadline_at(None).__enter__()

    async def main() -> None:
        d = deadline_at(None)
        with d:
            pass
        with pytest.raises(RuntimeError):
            d.__enter__()

    asyncio.run(main())
