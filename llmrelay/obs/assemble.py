"""Streams as the messages they describe, for the request log: what a client received over
SSE (or as a translation's canonical events), assembled into one body in its own API.

- Anthropic: events (decoded by :mod:`llmrelay.codecs.anthropic`) folded by
  :class:`~llmrelay.core.accumulate.Accumulator` into the Message the SDK would build.
- OpenAI: ``chat.completion.chunk`` objects concatenated into one ``chat.completion``
  (content, refusal and reasoning text joined, tool calls joined by index, the last
  ``finish_reason`` and ``usage``), keeping the fields as the provider sent them.

A stream that ended with an error event is the message so far with an ``error`` member.
These run in the usage writer's thread (off the request path, but on the gateway's CPU),
so they are cheap per event: a stream in the usual shape (``event:``/``data:`` lines, ``\n``
line ends) has its data lines found by one search instead of being decoded event by event,
and an Anthropic stream's runs of text deltas are joined before the fold; either way the
body is the one decoding every event gives (``tests/obs/test_assemble_fast.py``). Pure
functions; they raise ``ValueError`` (or the codecs' errors) for bytes that are not such a
stream, and the caller keeps the bytes as text instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

from ..codecs import anthropic as anthropic_codec
from ..core.accumulate import Accumulator, StreamFailed
from ..core.events import Event
from ..core.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder
from ..core.types import Response

__all__ = ["anthropic_message", "anthropic_stream", "fold_events", "openai_stream"]


def fold_events(
    events: Iterable[Event], *, owned: bool = False
) -> tuple[Response | None, dict[str, str] | None]:
    """The message so far and the stream's error, if it carried one; ``owned``: the events
    were decoded for this fold alone (see :class:`Accumulator`)."""
    acc = Accumulator(owned=owned)
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


#: A stream in the shape Anthropic and OpenAI send (every event an optional ``event:``
#: line and one ``data:`` line, ``\n`` line ends, ended by its blank line): its data
#: lines are found by one search instead of decoding it event by event.
_PLAIN = re.compile(rb"(?:(?:event: [a-z_]+\n)?data: [^\n]*\n\n)*")
# In such a stream ``data: `` first appears at the start of a data line (an event name has
# no space); the match takes the whole line, so the same bytes inside it are not matched.
_DATA = re.compile(rb"data: ([^\n]*)")


def _sse_objects(raw: bytes) -> list[Any]:
    """The parsed ``data`` of each SSE event (``[DONE]`` as None, data that is not JSON
    left out); the stream is over, so its last event is complete even without the blank
    line."""
    if len(raw) <= DEFAULT_MAX_EVENT_BYTES and raw.find(b"\r") < 0 and _PLAIN.fullmatch(raw):
        try:
            return [None if d == b"[DONE]" else orjson.loads(d) for d in _DATA.findall(raw)]
        except orjson.JSONDecodeError:
            pass  # some data is not JSON: left out below, event by event
    out: list[Any] = []
    for ev in SSEDecoder().feed(raw + b"\n\n"):
        if ev.data == b"[DONE]":
            out.append(None)
            continue
        try:
            out.append(orjson.loads(ev.data))
        except orjson.JSONDecodeError:
            continue
    return out


#: The generated text of each delta type a run of deltas may be joined for.
_DELTA_TEXT = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}


def _joined_deltas(objects: list[Any]) -> list[Any]:
    """``objects`` with each run of ``content_block_delta`` objects of one block and one
    text-carrying type joined into one: the fold appends a delta's text to its block, so
    the message is the same, folded from a handful of events instead of one per delta.
    Only deltas the codec would read as they are (an integer index, a string text) are
    joined; every other object stays as it came, to be decoded (or refused) alike."""
    out: list[Any] = []
    run: list[str] | None = None
    run_index = -1
    run_kind = ""
    for o in objects:
        if type(o) is dict and o.get("type") == "content_block_delta":
            delta = o.get("delta")
            i = o.get("index")
            if type(delta) is dict and type(i) is int and i >= 0:
                kind = delta.get("type")
                key = _DELTA_TEXT.get(kind) if type(kind) is str else None
                text = delta.get(key) if key is not None else None
                if type(text) is str:
                    if run is not None and i == run_index and kind == run_kind:
                        run.append(text)
                        continue
                    if run is not None:
                        out.append(_delta(run_index, run_kind, run))
                    run, run_index, run_kind = [text], i, str(kind)
                    continue
        if run is not None:
            out.append(_delta(run_index, run_kind, run))
            run = None
        out.append(o)
    if run is not None:
        out.append(_delta(run_index, run_kind, run))
    return out


def _delta(index: int, kind: str, texts: list[str]) -> dict[str, Any]:
    text = texts[0] if len(texts) == 1 else "".join(texts)
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": kind, _DELTA_TEXT[kind]: text},
    }


def anthropic_stream(raw: bytes) -> dict[str, Any]:
    """An Anthropic Messages stream -> the Message it describes."""
    events: list[Event] = []
    for data in _joined_deltas(_sse_objects(raw)):
        if isinstance(data, dict):
            event = anthropic_codec.decode_event(data)
            if event is not None:
                events.append(event)
    response, error = fold_events(events, owned=True)
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
