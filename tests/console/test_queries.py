"""Console reads are bounded: a read past its timeout is a 503 with the reason, and while
too many timed-out reads still hold their threads, further reads are refused at once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from llmrelay.console import queries as q
from llmrelay.console.queries import Queries
from llmrelay.errors import ServiceUnavailable


def test_a_read_past_its_timeout_is_a_503_naming_the_wait() -> None:
    release = threading.Event()

    async def main() -> None:
        queries = Queries(gw=Any, timeout_s=0.05)  # type: ignore[arg-type]
        with pytest.raises(ServiceUnavailable, match=r"did not answer within 0\.05 s"):
            await queries.run(release.wait, 5)
        release.set()

    asyncio.run(main())


def test_stalled_reads_cap_the_threads_then_refuse_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "MAX_THREADS", 2)
    release = threading.Event()
    started = threading.Semaphore(0)

    def stall() -> None:
        started.release()
        release.wait(5)

    async def main() -> None:
        queries = Queries(gw=Any, timeout_s=0.05)  # type: ignore[arg-type]
        for _ in range(2):
            with pytest.raises(ServiceUnavailable, match="did not answer"):
                await queries.run(stall)
        calls = []
        with pytest.raises(ServiceUnavailable, match="earlier console reads are still waiting"):
            await queries.run(lambda: calls.append(1))
        assert calls == []  # refused without starting a thread
        release.set()
        for _ in range(100):  # the stalled threads end and give their places back
            if queries._threads == 0:
                break
            await asyncio.sleep(0.01)
        assert await queries.run(lambda: 42) == 42

    asyncio.run(main())
