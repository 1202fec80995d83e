"""The worker's side of the supervisor's counter service: what happens when it is away."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from llmrelay.stores.counter_service import CounterService
from llmrelay.stores.counter_wire import MAX_FRAME_BYTES
from llmrelay.stores.counters import Window
from llmrelay.stores.failover_counters import CounterStoreUnavailable
from llmrelay.stores.socket_counters import SocketCounterStore

RPM = Window("rl:key:k:rpm", 2, 60, 1)


def test_no_service_is_unavailable_not_admitted(tmp_path: Path) -> None:
    async def body() -> None:
        store = SocketCounterStore(tmp_path / "absent.sock")
        with pytest.raises(CounterStoreUnavailable, match="unreachable"):
            await store.acquire([RPM], [1])
        await store.aclose()

    asyncio.run(body())


def test_a_service_that_never_answers_times_out(tmp_path: Path) -> None:
    async def body() -> None:
        done = asyncio.Event()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # reads, never answers
            writer.close()
            await writer.wait_closed()
            done.set()

        path = tmp_path / "mute.sock"
        server = await asyncio.start_unix_server(mute, path=str(path))
        store = SocketCounterStore(path, timeout_s=0.2)
        with pytest.raises(CounterStoreUnavailable, match="did not answer"):
            await store.acquire([RPM], [1])
        await store.aclose()
        await asyncio.wait_for(done.wait(), 5)
        server.close()
        await server.wait_closed()

    asyncio.run(body())


def test_calls_in_flight_fail_when_the_service_goes_and_the_next_reconnects(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        path = tmp_path / "counters.sock"
        service = CounterService(path)
        await service.start()
        store = SocketCounterStore(path)
        assert (await store.acquire([RPM], [1])).ok
        await service.aclose()  # the supervisor went away
        with pytest.raises(CounterStoreUnavailable):
            await store.acquire([RPM], [1])
        service = CounterService(path)  # and came back (its counters start afresh)
        await service.start()
        results = [await store.acquire([RPM], [1]) for _ in range(3)]
        assert [r.ok for r in results] == [True, True, False]
        await store.aclose()
        await service.aclose()

    asyncio.run(body())


def test_many_calls_share_one_connection_and_get_their_own_answers(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "counters.sock"
        service = CounterService(path)
        await service.start()
        store = SocketCounterStore(path)
        windows = [Window(f"rl:key:{i}:rpm", 1, 60, 1) for i in range(50)]
        first = await asyncio.gather(*(store.acquire([w], [1]) for w in windows))
        again = await asyncio.gather(*(store.acquire([w], [1]) for w in windows))
        assert all(a.ok for a in first) and not any(a.ok for a in again)
        await store.aclose()
        await service.aclose()

    asyncio.run(body())


def test_an_oversized_frame_closes_only_that_connection(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "counters.sock"
        service = CounterService(path)
        await service.start()
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(struct.pack(">I", MAX_FRAME_BYTES + 1))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
        writer.close()
        await writer.wait_closed()
        store = SocketCounterStore(path)
        assert (await store.acquire([RPM], [1])).ok
        await store.aclose()
        await service.aclose()

    asyncio.run(body())


def test_works_on_uvloop_as_the_workers_run_it(tmp_path: Path) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def body() -> None:
        path = tmp_path / "counters.sock"
        service = CounterService(path)
        await service.start()
        store = SocketCounterStore(path)
        results = [await store.acquire([RPM], [1]) for _ in range(3)]
        assert [r.ok for r in results] == [True, True, False]
        await store.aclose()
        await service.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(body())


def test_ping_answers_while_the_service_is_there_and_raises_when_it_is_not(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        path = tmp_path / "counters.sock"
        service = CounterService(path)
        await service.start()
        store = SocketCounterStore(path)
        await store.ping()
        await service.aclose()
        with pytest.raises(ConnectionError):
            await store.ping()
        await store.aclose()

    asyncio.run(body())
