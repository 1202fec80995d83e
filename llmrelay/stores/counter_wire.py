"""The frames between worker processes and the supervisor's counter service.

A frame is a 4-byte big-endian length and that many bytes of JSON (at most
``MAX_FRAME_BYTES``; a larger length closes the connection). Requests and answers are JSON
arrays; one connection carries many requests at once, answered in order of arrival:

* request ``[id, op, *args]``, ``op`` one of the :class:`~llmrelay.stores.counters.
  CounterStore` methods (``acquire``, ``add``, ``reserve``, ``settle``, ``admit``,
  ``release``, ``seed``, ``ping``);
* answer ``[id, result]``, or ``[id, null, kind, message]`` when the store raised
  (``kind`` ``value``: ValueError; ``other``: anything else).

A window travels as ``[key, limit, window_s, bucket_s]``, a hold as ``[key, limit, amount,
ttl_s, enforce]``, a settle as ``[key, reserved, actual, ttl_s]``; results as the fields of
:class:`Acquired`, :class:`BudgetState` and :class:`Admitted` in declaration order.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import orjson

from .counters import Acquired, Admitted, BudgetState, CounterStore, Hold, Settle, Window

__all__ = [
    "MAX_FRAME_BYTES",
    "FrameBuffer",
    "FrameError",
    "decode_result",
    "dispatch",
    "holds_out",
    "pack",
    "settles_out",
    "windows_out",
]

#: Largest frame either side accepts, in bytes (a call with hundreds of windows is < 64 KiB).
MAX_FRAME_BYTES = 1 << 20
_LEN = struct.Struct(">I")


class FrameError(Exception):
    """A frame longer than ``MAX_FRAME_BYTES`` or not a JSON array."""


def pack(message: Sequence[Any]) -> bytes:
    """One frame holding ``message``."""
    body = orjson.dumps(message)
    return _LEN.pack(len(body)) + body


class FrameBuffer:
    """Bytes as they arrive → the complete messages in them (an ``asyncio.Protocol``'s
    ``data_received`` feeds it). Holds at most one frame's bytes plus a read's worth."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[list[Any]]:
        """The messages completed by ``data``. Raises :class:`FrameError` for an oversized
        or malformed frame (the connection is then unusable)."""
        buf = self._buf
        buf += data
        out: list[list[Any]] = []
        start = 0
        while len(buf) - start >= _LEN.size:
            (size,) = _LEN.unpack_from(buf, start)
            if size > MAX_FRAME_BYTES:
                raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
            end = start + _LEN.size + size
            if len(buf) < end:
                break
            try:
                message = orjson.loads(memoryview(buf)[start + _LEN.size : end])
            except orjson.JSONDecodeError as err:
                raise FrameError(f"a frame is not JSON: {err}") from None
            if not isinstance(message, list) or not message:
                raise FrameError("a frame must hold a non-empty JSON array")
            out.append(message)
            start = end
        if start:
            del buf[:start]
        return out


def windows_out(windows: Sequence[Window]) -> list[list[Any]]:
    return [[w.key, w.limit, w.window_s, w.bucket_s] for w in windows]


def holds_out(holds: Sequence[Hold]) -> list[list[Any]]:
    return [[h.key, h.limit, h.amount, h.ttl_s, h.enforce] for h in holds]


def settles_out(settles: Sequence[Settle]) -> list[list[Any]]:
    return [[s.key, s.reserved, s.actual, s.ttl_s] for s in settles]


def _windows(raw: list[list[Any]]) -> list[Window]:
    return [Window(str(k), int(limit), int(w), int(b)) for k, limit, w, b in raw]


def _amounts(raw: list[Any]) -> list[int]:
    return [int(a) for a in raw]


def _at(raw: Any) -> float | None:
    return None if raw is None else float(raw)


async def dispatch(store: CounterStore, op: str, args: list[Any]) -> Any:
    """Run ``op`` on ``store`` with wire ``args``; the result in wire form.

    Raises ValueError for an unknown op or malformed arguments (and whatever the store
    raises)."""
    try:
        if op == "admit":
            holds = [Hold(str(k), int(lim), int(a), int(t), bool(e)) for k, lim, a, t, e in args[2]]
            r = await store.admit(_windows(args[0]), _amounts(args[1]), holds)
            states = [[s.ok, s.spent, s.reserved] for s in r.holds]
            return [r.ok, r.refused_window, r.retry_after_s, r.refused_hold, states, r.at]
        if op == "release":
            settles = [Settle(str(k), int(r), int(a), int(t)) for k, r, a, t in args[3]]
            await store.release(_windows(args[0]), _amounts(args[1]), _at(args[2]), settles)
            return None
        if op == "acquire":
            a = await store.acquire(_windows(args[0]), _amounts(args[1]))
            return [a.ok, a.refused, a.retry_after_s, a.at]
        if op == "add":
            await store.add(_windows(args[0]), _amounts(args[1]), _at(args[2]))
            return None
        if op == "reserve":
            b = await store.reserve(str(args[0]), int(args[1]), int(args[2]), int(args[3]))
            return [b.ok, b.spent, b.reserved]
        if op == "settle":
            await store.settle(str(args[0]), int(args[1]), int(args[2]), int(args[3]))
            return None
        if op == "seed":
            return await store.seed(str(args[0]), int(args[1]), int(args[2]))
        if op == "ping":
            await store.ping()
            return None
    except (TypeError, IndexError, KeyError) as err:
        raise ValueError(f"malformed {op!r} arguments: {err}") from None
    raise ValueError(f"unknown counter op {op!r}")


def decode_result(op: str, raw: Any) -> Any:
    """A wire result as the :class:`CounterStore` method ``op`` returns it."""
    if op == "admit":
        ok, rw, retry, rh, states, at = raw
        holds = tuple(BudgetState(bool(s[0]), int(s[1]), int(s[2])) for s in states)
        return Admitted(bool(ok), int(rw), float(retry), int(rh), holds, float(at))
    if op == "acquire":
        return Acquired(bool(raw[0]), int(raw[1]), float(raw[2]), float(raw[3]))
    if op == "reserve":
        return BudgetState(bool(raw[0]), int(raw[1]), int(raw[2]))
    if op == "seed":
        return bool(raw)
    return None
