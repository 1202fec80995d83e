"""``llmrelay.drain.Drain``: a cut ends open streams through their own deadline, a stream
that starts after a cut ends at once, and a stream's own deadline is never taken for a cut."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay.drain import Drain, GatewayRestarting


def test_a_cut_ends_an_open_stream_and_marks_it() -> None:
    async def main() -> None:
        drain = Drain()
        inside = asyncio.Event()
        marked: list[bool] = []

        async def stream() -> None:
            with pytest.raises(TimeoutError):
                async with drain.deadline(None) as watch:
                    marked.append(watch.cut)
                    inside.set()
                    await asyncio.Event().wait()  # only the cut ends this
            marked.append(watch.cut)

        task = asyncio.create_task(stream())
        await inside.wait()
        assert drain.open_streams == 1
        drain.cut("server.drain_timeout_s ran out")
        await task
        assert marked == [False, True]
        assert drain.open_streams == 0

    asyncio.run(main())


def test_a_stream_that_starts_after_the_cut_ends_at_once() -> None:
    async def main() -> None:
        drain = Drain()
        drain.cut("a second shutdown signal")
        with pytest.raises(TimeoutError):
            async with drain.deadline(None) as watch:
                await asyncio.Event().wait()
        assert watch.cut
        assert drain.open_streams == 0

    asyncio.run(main())


def test_a_streams_own_deadline_is_not_a_cut() -> None:
    async def main() -> None:
        drain = Drain()
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with drain.deadline(loop.time()) as watch:
                await asyncio.Event().wait()
        assert not watch.cut
        drain.cut("late")  # nothing open: nothing to mark
        assert not watch.cut

    asyncio.run(main())


def test_states_and_the_error_a_cut_stream_ends_with() -> None:
    drain = Drain()
    assert not drain.draining and drain.cut_reason is None
    drain.begin()
    assert drain.draining and drain.cut_reason is None
    drain.cut("first reason")
    drain.cut("second reason")
    err = drain.error()
    assert isinstance(err, GatewayRestarting)
    assert (err.status, err.error_type) == (529, "overloaded_error")
    assert err.message == "gateway restarting: first reason"
