"""While the store is out, batches are retried whole, a full queue spills to disk, and
shutdown spills what is left; every row reaches the store once it is back, once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import llmrelay.obs.usage as usage_mod
from llmrelay.obs.spill import SpillFile, encode_row
from llmrelay.obs.usage import UsageRecorder
from tests.obs.conftest import Outage
from tests.obs.support import good, until


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "_FIRST_BACKOFF_S", 0.02)
    monkeypatch.setattr(usage_mod, "_MAX_BACKOFF_S", 0.1)


def recorder(outage: Outage, **kw: Any) -> UsageRecorder:
    settings: dict[str, Any] = {"queue_size": 1000, "batch_size": 10, "flush_interval_s": 0.01}
    settings.update(kw)
    return UsageRecorder(outage.store, **settings)


def spill_file(tmp_path: Path, max_bytes: int = 1 << 20) -> SpillFile:
    return SpillFile(tmp_path / "usage.spill.jsonl", max_bytes)


def stored_ids(outage: Outage) -> list[str]:
    return sorted(r.request_id for r in outage.rows())


def expected_ids(n: int) -> list[str]:
    return sorted(f"req_{i}" for i in range(n))


def test_a_batch_failing_for_an_outage_is_retried_until_the_store_is_back(
    outage: Outage,
) -> None:
    async def main() -> UsageRecorder:
        rec = recorder(outage)
        rec.start()
        outage.down()
        for i in range(30):
            rec.record(good(i))
        await until(lambda: rec.failed_writes >= 2)
        assert (rec.written, rec.dropped, rec.queue_depth) == (0, 0, 30)
        outage.up()
        await until(lambda: rec.written == 30)
        await rec.aclose()
        return rec

    rec = asyncio.run(main())
    assert stored_ids(outage) == expected_ids(30)
    assert (rec.written, rec.dropped, rec.spilled) == (30, 0, 0)


def test_a_full_queue_spills_to_disk_and_is_replayed_once_the_store_is_back(
    outage: Outage, tmp_path: Path
) -> None:
    async def main() -> UsageRecorder:
        rec = recorder(outage, queue_size=5, batch_size=5, spill=spill_file(tmp_path))
        rec.start()
        outage.down()
        for i in range(50):
            rec.record(good(i))
        await until(lambda: rec.spilled == 45)
        assert (rec.written, rec.dropped) == (0, 0)
        outage.up()
        await until(lambda: rec.written == 50)
        await rec.aclose()
        return rec

    rec = asyncio.run(main())
    assert stored_ids(outage) == expected_ids(50)
    assert (rec.written, rec.spilled, rec.replayed, rec.dropped) == (50, 45, 45, 0)
    assert not (tmp_path / "usage.spill.jsonl.replay").exists()


def test_rows_past_a_full_spill_file_are_dropped_and_counted(
    outage: Outage, tmp_path: Path
) -> None:
    three_rows = 3 * len(encode_row(good(10))) + 10

    async def main() -> UsageRecorder:
        spill = spill_file(tmp_path, max_bytes=three_rows)
        rec = recorder(outage, queue_size=5, batch_size=5, spill=spill)
        rec.start()
        outage.down()
        for i in range(10, 30):
            rec.record(good(i))
        await until(lambda: rec.spilled + rec.dropped == 15)
        outage.up()
        await until(lambda: rec.written == 8)
        await rec.aclose()
        return rec

    rec = asyncio.run(main())
    assert (rec.written, rec.spilled, rec.dropped, rec.replayed) == (8, 3, 12, 3)
    assert stored_ids(outage) == sorted(f"req_{i}" for i in range(10, 18))


def test_shutdown_with_the_store_down_spills_and_the_next_start_replays(
    outage: Outage, tmp_path: Path
) -> None:
    async def first_run() -> UsageRecorder:
        rec = recorder(outage, spill=spill_file(tmp_path), shutdown_timeout_s=0.2)
        rec.start()
        outage.down()
        for i in range(30):
            rec.record(good(i))
        await rec.aclose()
        return rec

    async def next_run() -> UsageRecorder:
        rec = recorder(outage, spill=spill_file(tmp_path))
        rec.start()
        await until(lambda: rec.written == 30)
        await rec.aclose()
        return rec

    first = asyncio.run(first_run())
    assert (first.written, first.spilled, first.dropped) == (0, 30, 0)
    outage.up()
    second = asyncio.run(next_run())
    assert (second.written, second.replayed, second.spilled, second.dropped) == (30, 30, 0, 0)
    assert stored_ids(outage) == expected_ids(30)
