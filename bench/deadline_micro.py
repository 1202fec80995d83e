"""CPU per use of a call's deadline: ``asyncio.timeout_at`` against
``llmrelay.deadlines.deadline_at``, on uvloop, around a block that ends in time (the common
case). Prints µs per use (process CPU time, the bare block's cost subtracted).

    .venv/bin/python bench/deadline_micro.py [--n 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from llmrelay.deadlines import deadline_at


async def _block() -> None:
    await asyncio.sleep(0)


async def _main(n: int) -> None:
    loop = asyncio.get_running_loop()

    async def bare() -> None:
        for _ in range(n):
            await _block()

    async def timeout_at() -> None:
        for _ in range(n):
            async with asyncio.timeout_at(loop.time() + 600):
                await _block()

    async def heap() -> None:
        for _ in range(n):
            with deadline_at(loop.time() + 600):
                await _block()

    figures: dict[str, float] = {}
    for _ in range(3):
        for name, body in (("bare", bare), ("timeout_at", timeout_at), ("deadline_at", heap)):
            began = time.process_time()
            await body()
            took = (time.process_time() - began) / n * 1e6
            figures[name] = min(figures.get(name, took), took)
    for name in ("timeout_at", "deadline_at"):
        print(f"{name:12s} {figures[name] - figures['bare']:.2f} µs a use")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    uvloop.run(_main(ap.parse_args().n))


if __name__ == "__main__":
    main()
