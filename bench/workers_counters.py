"""Microbenchmark: sharing rate-limit and budget counters between worker processes.

What ``llmrelay serve --workers N`` without Redis needs: every worker's ``admit`` and
``release`` (one governed call: 3 windows, 2 budget holds) against one set of counters.
The candidates, each timed for ``--n`` calls (admit then release) in a row:

* ``memory``: :class:`MemoryCounterStore` in this process (one worker; the floor);
* ``socket``: :class:`SocketCounterStore` to a :class:`CounterService` in another process
  over a Unix socket (what ships), sequential calls and 32 calls in flight;
* ``sqlite``: the same admit/release as SQL transactions (``BEGIN IMMEDIATE``) on a WAL
  file that every worker would open, run synchronously here (a lower bound: a worker would
  also pay a thread hop per call, as the usage store does).

Figures: wall and CPU µs per call (this process's CPU; for ``socket`` also the service
process's, read from /proc). The best of ``--rounds`` rounds.

    .venv/bin/python bench/workers_counters.py
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from llmrelay.stores.counter_service import CounterService
from llmrelay.stores.counters import Hold, Settle, Window
from llmrelay.stores.memory_counters import MemoryCounterStore
from llmrelay.stores.socket_counters import SocketCounterStore

WINDOWS = [
    Window("rl:key:b:rpm", 10**9, 60, 1),
    Window("rl:key:b:tpm", 10**12, 60, 1),
    Window("rl:team:b:rpd", 10**9, 86400, 1440),
]
AMOUNTS = [1, 500, 1]
HOLDS = [Hold("bg:key:b", 10**15, 1000, 3600), Hold("bg:team:b", 10**15, 1000, 3600)]
SETTLES = [Settle("bg:key:b", 1000, 900, 3600), Settle("bg:team:b", 1000, 900, 3600)]


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(path: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    async def run() -> None:
        service = CounterService(Path(path))
        await service.start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(run())


async def _measure(
    name: str, n: int, rounds: int, call: Callable[[], Awaitable[None]], other: int | None = None
) -> None:
    for _ in range(min(n, 200)):
        await call()
    best = (math.inf, math.inf, math.inf)
    for _ in range(rounds):
        other_cpu = _cpu_of(other) if other else 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        await call_n(call, n)
        took = (
            time.perf_counter() - wall,
            time.process_time() - cpu,
            (_cpu_of(other) - other_cpu) if other else 0.0,
        )
        best = min(best, took)
    per = [t / n * 1e6 for t in best]
    extra = f" + {per[2]:5.0f} us service CPU" if other else ""
    print(f"{name:<28} {per[0]:6.0f} us wall {per[1]:6.0f} us CPU{extra}")


async def call_n(call: Callable[[], Awaitable[None]], n: int) -> None:
    for _ in range(n):
        await call()


def _sqlite_store(path: Path) -> Callable[[], Awaitable[None]]:
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS w (k TEXT, i INTEGER, n INTEGER, PRIMARY KEY (k, i))")
    db.execute("CREATE TABLE IF NOT EXISTS b (k TEXT PRIMARY KEY, spent INTEGER, reserved INTEGER)")

    async def call() -> None:
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        for w, a in zip(WINDOWS, AMOUNTS, strict=True):
            idx = math.floor(now / w.bucket_s)
            oldest = idx - w.window_s // w.bucket_s
            (total,) = db.execute(
                "SELECT coalesce(sum(n), 0) FROM w WHERE k = ? AND i > ?", (w.key, oldest)
            ).fetchone()
            assert total + a <= w.limit
        for h in HOLDS:
            row = db.execute("SELECT spent, reserved FROM b WHERE k = ?", (h.key,)).fetchone()
            assert row is None or row[0] + row[1] + h.amount <= h.limit
        for w, a in zip(WINDOWS, AMOUNTS, strict=True):
            idx = math.floor(now / w.bucket_s)
            db.execute(
                "INSERT INTO w VALUES (?, ?, ?) ON CONFLICT (k, i) DO UPDATE SET n = n + ?",
                (w.key, idx, a, a),
            )
        for h in HOLDS:
            db.execute(
                "INSERT INTO b VALUES (?, 0, ?)"
                " ON CONFLICT (k) DO UPDATE SET reserved = reserved + ?",
                (h.key, h.amount, h.amount),
            )
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        for s in SETTLES:
            db.execute(
                "UPDATE b SET reserved = max(0, reserved - ?), spent = spent + ? WHERE k = ?",
                (s.reserved, s.actual, s.key),
            )
        db.execute("COMMIT")

    return call


def _run_sync(call: Callable[[], Awaitable[None]]) -> None:
    """Run a coroutine function that never awaits anything, in this (worker) thread."""
    coro = call()
    try:
        coro.send(None)  # type: ignore[attr-defined]
    except StopIteration:
        return
    raise RuntimeError("the call awaited")


def _calls(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=5.0)
    try:
        row = conn.execute("SELECT coalesce(sum(n), 0) FROM w WHERE k = 'rl:key:b:rpm'").fetchone()
        return int(row[0])
    finally:
        conn.close()


def _hammer(kind: str, path: str) -> None:
    """Another worker's load on the same counters, until terminated."""

    async def run() -> None:
        if kind == "sqlite":
            call = _sqlite_store(Path(path))
        else:
            store = SocketCounterStore(Path(path))

            async def call() -> None:
                r = await store.admit(WINDOWS, AMOUNTS, HOLDS)
                await store.release([], [], r.at, SETTLES)

        while True:
            await call()

    asyncio.run(run())


def _others(kind: str, path: Path, count: int) -> list[multiprocessing.process.BaseProcess]:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(kind, str(path)), daemon=True) for _ in range(count)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # their imports done, their calls running
    return procs


async def main(n: int, rounds: int) -> None:
    memory = MemoryCounterStore()

    async def memory_call() -> None:
        r = await memory.admit(WINDOWS, AMOUNTS, HOLDS)
        await memory.release([], [], r.at, SETTLES)

    await _measure("memory (one process)", n, rounds, memory_call)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "counters.sock"
        ready = multiprocessing.get_context("spawn").Event()
        proc = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(str(path), ready), daemon=True
        )
        proc.start()
        ready.wait(30)
        assert proc.pid is not None
        store = SocketCounterStore(path)

        async def socket_call() -> None:
            r = await store.admit(WINDOWS, AMOUNTS, HOLDS)
            await store.release([], [], r.at, SETTLES)

        await _measure("socket, sequential", n, rounds, socket_call, proc.pid)

        async def socket_32() -> None:
            await asyncio.gather(*(socket_call() for _ in range(32)))

        await _measure(
            "socket, 32 in flight (per 32)", max(1, n // 32), rounds, socket_32, proc.pid
        )
        others = _others("socket", path, 2)
        await _measure("socket, 2 other workers busy", n, rounds, socket_call, proc.pid)
        for p in others:
            p.terminate()
        await store.aclose()
        proc.terminate()
        proc.join(5)

        db = Path(tmp) / "c.db"
        sqlite_call = _sqlite_store(db)
        await _measure("sqlite WAL, sync (no hop)", n, rounds, sqlite_call)

        async def sqlite_hop() -> None:
            await asyncio.to_thread(_run_sync, sqlite_call)

        await _measure("sqlite WAL, thread hop", n, rounds, sqlite_hop)
        before = _calls(db)
        others = _others("sqlite", db, 2)
        await _measure("sqlite, 2 other workers busy", n, rounds, sqlite_hop)
        for p in others:
            p.terminate()
        print(f"  (sqlite calls by all workers meanwhile: {_calls(db) - before})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
