"""Streams as the messages they describe, for the request log: what a client received over
SSE (or as a translation's canonical events), assembled into one body in its own API.

- Anthropic: events (decoded by :mod:`llmrelay.codecs.anthropic`) folded by
  :class:`~llmrelay.core.accumulate.Accumulator` into the Message the SDK would build.
- OpenAI: ``chat.completion.chunk`` objects concatenated into one ``chat.completion``
  (content, refusal and reasoning text joined, tool calls joined by index, the last
  ``finish_reason`` and ``usage``), keeping the fields as the provider sent them.

A stream that ended with an error event is the message so far with an ``error`` member.
Pure functions; they raise ``ValueError`` (or the codecs' errors) for bytes that are not
such a stream, and the caller keeps the bytes as text instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ..codecs import anthropic as anthropic_codec
from ..core.accumulate import Accumulator, StreamFailed
from ..core.events import Event
from ..core.sse import SSEDecoder
from ..core.types import Response

__all__ = ["anthropic_message", "anthropic_stream", "fold_events", "openai_stream"]


def fold_events(events: Iterable[Event]) -> tuple[Response | None, dict[str, str] | None]:
    """The message so far and the stream's error, if it carried one."""
    acc = Accumulator()
    try:
        for event in events:
            acc.feed(event)
    except StreamFailed as failed:
        return acc.response, {"type": failed.error_type, "message": failed.message}
    return acc.response, None


def anthropic_message(response: Response | None, error: dict[str, str] | None) -> dict[str, Any]:
    if response is None:
        return {"type": "error", "error": error} if error is not None else {}
    out: dict[str, Any] = dict(anthropic_codec.encode_response(response))
    if error is not None:
        out["error"] = error
    return out


def _sse_objects(raw: bytes) -> Iterable[Any]:
    """The parsed ``data`` of each SSE event (``[DONE]`` as None); the stream is over, so
    its last event is complete even without the blank line."""
    for ev in SSEDecoder().feed(raw + b"\n\n"):
        if ev.data == b"[DONE]":
            yield None
            continue
        try:
            yield orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            continue


def anthropic_stream(raw: bytes) -> dict[str, Any]:
    """An Anthropic Messages stream -> the Message it describes."""
    events: list[Event] = []
    for data in _sse_objects(raw):
        if isinstance(data, dict):
            event = anthropic_codec.decode_event(data)
            if event is not None:
                events.append(event)
    response, error = fold_events(events)
    if response is None and error is None:
        raise ValueError("no message_start")
    return anthropic_message(response, error)


def openai_stream(raw: bytes) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk`` stream -> one ``chat.completion``: content,
    refusal and reasoning text concatenated, tool calls joined by index, the last
    ``finish_reason`` and ``usage``."""
    head: dict[str, Any] = {}
    choices: dict[int, _Choice] = {}
    error: Any = None
    seen = False
    for chunk in _sse_objects(raw):
        if chunk is None:
            break
        if not isinstance(chunk, dict):
            continue
        seen = True
        if "error" in chunk and not chunk.get("choices"):
            error = chunk["error"]
            continue
        for name in ("id", "created", "model", "system_fingerprint", "service_tier", "usage"):
            if chunk.get(name) is not None:
                head[name] = chunk[name]
        for c in chunk.get("choices") or ():
            if isinstance(c, dict):
                index = c.get("index", 0)
                choice = choices.get(index) if isinstance(index, int) else None
                if choice is None and isinstance(index, int):
                    choice = choices[index] = _Choice(index)
                if choice is not None:
                    choice.feed(c)
    if not seen:
        raise ValueError("no chunk")
    out: dict[str, Any] = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
    }
    for name in ("system_fingerprint", "service_tier"):
        if name in head:
            out[name] = head[name]
    out["choices"] = [choices[i].json() for i in sorted(choices)]
    if "usage" in head:
        out["usage"] = head["usage"]
    if error is not None:
        out["error"] = error
    return out


class _Choice:
    """One choice of an OpenAI stream, as its deltas arrive."""

    __slots__ = ("calls", "finish_reason", "index", "role", "texts")

    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.texts: dict[str, list[str]] = {}
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: Any = None

    def feed(self, c: dict[str, Any]) -> None:
        delta = c.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("role"), str):
                self.role = delta["role"]
            for name in ("content", "refusal", "reasoning_content"):
                piece = delta.get(name)
                if isinstance(piece, str):
                    self.texts.setdefault(name, []).append(piece)
            for tc in delta.get("tool_calls") or ():
                if isinstance(tc, dict):
                    self._tool_call(tc)
        if c.get("finish_reason") is not None:
            self.finish_reason = c["finish_reason"]

    def _tool_call(self, tc: dict[str, Any]) -> None:
        index = tc.get("index", len(self.calls))
        call = self.calls.setdefault(
            index if isinstance(index, int) else len(self.calls),
            {"id": None, "type": "function", "name": [], "arguments": []},
        )
        for name in ("id", "type"):
            if isinstance(tc.get(name), str):
                call[name] = tc[name]
        fn = tc.get("function")
        if isinstance(fn, dict):
            for name in ("name", "arguments"):
                if isinstance(fn.get(name), str):
                    call[name].append(fn[name])

    def _joined(self, name: str) -> str | None:
        parts = self.texts.get(name)
        return None if parts is None else "".join(parts)

    def json(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role,
            "content": self._joined("content"),
            "refusal": self._joined("refusal"),
        }
        if "reasoning_content" in self.texts:
            message["reasoning_content"] = self._joined("reasoning_content")
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": call["type"],
                    "function": {
                        "name": "".join(call["name"]),
                        "arguments": "".join(call["arguments"]),
                    },
                }
                for _, call in sorted(self.calls.items())
            ]
        return {
            "index": self.index,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_reason,
        }
