"""Request ids: Anthropic's ``req_`` shape, unique, and increasing with time (so usage rows
append to the ``request_id`` indexes rather than dirtying a random page each)."""

from __future__ import annotations

import re
import time

from llmrelay.pipeline.run import new_request_id


def test_shape_and_uniqueness() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_request_id()
    time.sleep(0.002)
    second = new_request_id()
    assert first < second
    millis = int(second[4:16], 16)
    assert abs(millis - time.time() * 1000) < 60_000
