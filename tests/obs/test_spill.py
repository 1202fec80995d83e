"""The spill file keeps rows in order within its bound, replays them from the committed
offset (so a crash repeats at most the batch in flight), and survives a torn last line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmrelay.obs.spill import SpillFile, encode_row
from tests.obs.support import good

Opener = Callable[..., SpillFile]


def ids(rows: list[object]) -> list[str]:
    return [r.request_id for r in rows]  # type: ignore[attr-defined]


@pytest.fixture
def opened() -> Iterator[Opener]:
    """Opens spill files, and closes them after the test."""
    spills: list[SpillFile] = []

    def open_spill(path: Path, max_bytes: int = 1 << 20) -> SpillFile:
        spill = SpillFile(path, max_bytes)
        spill.open()
        spills.append(spill)
        return spill

    yield open_spill
    for spill in spills:
        spill.close()


def test_rows_come_back_in_order_and_the_files_go_once_replayed(
    tmp_path: Path, opened: Opener
) -> None:
    spill = opened(tmp_path / "u.spill.jsonl")
    assert spill.append([good(i) for i in range(5)]) == 5
    first = spill.read_batch(3)
    assert first is not None and ids(first.rows) == ["req_0", "req_1", "req_2"]
    assert first.rows[0] == good(0)
    spill.commit(first.ends[-1])
    second = spill.read_batch(3)
    assert second is not None and ids(second.rows) == ["req_3", "req_4"]
    spill.commit(second.end)
    assert spill.read_batch(3) is None
    assert spill.waiting_bytes == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.spill.jsonl.lock"]


def test_rows_past_the_bound_are_refused(tmp_path: Path, opened: Opener) -> None:
    size = len(encode_row(good(0)))
    spill = opened(tmp_path / "u.spill.jsonl", max_bytes=3 * size + size // 2)
    assert spill.append([good(i) for i in range(5)]) == 3
    assert spill.append([good(9)]) == 0
    batch = spill.read_batch(10)
    assert batch is not None
    spill.commit(batch.end)  # replayed rows free their room
    assert spill.append([good(i) for i in range(10, 15)]) == 3


def test_after_a_crash_replay_resumes_at_the_last_committed_batch(
    tmp_path: Path, opened: Opener
) -> None:
    path = tmp_path / "u.spill.jsonl"
    spill = opened(path)
    spill.append([good(i) for i in range(10)])
    batch = spill.read_batch(4)
    assert batch is not None
    spill.commit(batch.end)
    assert spill.read_batch(4) is not None  # stored, then the process dies before commit
    spill.close()

    again = opened(path)
    batch = again.read_batch(100)
    assert batch is not None and ids(batch.rows) == [f"req_{i}" for i in range(4, 10)]


def test_rows_spilled_during_a_replay_are_replayed_after_it(tmp_path: Path, opened: Opener) -> None:
    spill = opened(tmp_path / "u.spill.jsonl")
    spill.append([good(0), good(1)])
    batch = spill.read_batch(1)
    assert batch is not None and ids(batch.rows) == ["req_0"]
    spill.append([good(2)])  # goes to a fresh spill file; the replay file is left alone
    spill.commit(batch.end)
    seen = []
    while (batch := spill.read_batch(1)) is not None:
        seen += ids(batch.rows)
        spill.commit(batch.end)
    assert seen == ["req_1", "req_2"]


def test_a_torn_last_line_is_reported_and_later_rows_start_on_a_new_line(
    tmp_path: Path, opened: Opener
) -> None:
    path = tmp_path / "u.spill.jsonl"
    path.write_bytes(encode_row(good(0)) + encode_row(good(1))[:20])  # died mid-append
    spill = opened(path)
    spill.append([good(2)])
    batch = spill.read_batch(10)
    assert batch is not None
    assert ids(batch.rows) == ["req_0", "req_2"]
    assert batch.bad == [encode_row(good(1))[:20] + b"\n"]


def test_a_second_process_on_the_same_path_gets_a_slot_of_its_own(
    tmp_path: Path, opened: Opener
) -> None:
    path = tmp_path / "u.spill.jsonl"
    first, second = opened(path), opened(path)
    assert list(tmp_path.iterdir()) == []  # nothing spilled, nothing created
    first.append([good(1)])
    second.append([good(2)])
    assert (first.path, second.path) == (path, tmp_path / "u.spill.jsonl.2")
    first.close()
    # The next start takes over the slot its predecessor left rows in.
    third = opened(path)
    batch = third.read_batch(10)
    assert third.path == path and batch is not None and ids(batch.rows) == ["req_1"]
