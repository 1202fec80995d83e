"""Rows and helpers for the recorder tests: good rows, the poison that used to stop the
writer (with what each is stored as), and waiting for the writer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from llmrelay.stores.usage import UsageRecord

__all__ = ["POISON", "good", "until"]


def good(i: int, **kw: object) -> UsageRecord:
    """An ordinary row with request id ``req_<i>``."""
    base: dict[str, object] = {
        "ts": 1_767_225_600.0 + i,
        "request_id": f"req_{i}",
        "key_name": "alice",
        "model": "local/echo",
        "provider": "local",
        "provider_model": "echo",
        "endpoint": "messages",
        "stream": False,
        "status": 200,
        "input_tokens": 10,
        "output_tokens": 5,
        "latency_s": 0.01,
    }
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


#: What is wrong -> (the row's fields, the fields as stored). Each used to fail its whole
#: batch on SQLite, PostgreSQL or both, or to be stored whole.
POISON: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # {"model": "\ud800"} is legal JSON; the row of its 404 could not be encoded.
    "lone_surrogate_model": ({"model": "\ud800", "status": 404}, {"model": "\ufffd"}),
    "nul_in_model": ({"model": "a\x00b"}, {"model": "a\ufffdb"}),
    "nul_in_error_type": ({"error_type": "api\x00error"}, {"error_type": "api\ufffderror"}),
    # aiohttp decodes header bytes that are not UTF-8 with surrogateescape.
    "surrogate_escaped_upstream_request_id": (
        {"upstream_request_id": b"req_\xff\xfe".decode("utf-8", "surrogateescape")},
        {"upstream_request_id": "req_\ufffd\ufffd"},
    ),
    "8_mib_model": ({"model": "m" * (8 << 20)}, {"model": "m" * 255 + "…"}),
    "negative_tokens": (
        {"input_tokens": -7, "output_tokens": -1},
        {"input_tokens": 0, "output_tokens": 0},
    ),
    "tokens_past_64_bits": ({"input_tokens": 2**70}, {"input_tokens": 10**12}),
    "nan_latency": (
        {"latency_s": float("nan"), "ttft_s": float("inf"), "cost_usd": float("nan")},
        {"latency_s": 0.0, "ttft_s": None, "cost_usd": None},
    ),
}


async def until(done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until ``done()`` or ``timeout_s`` (a bound for a broken writer, not a measure:
    the caller's assertions then say what is missing)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        await asyncio.sleep(0.01)
