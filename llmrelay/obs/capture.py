"""Body capture for the request log (``observability.request_log``): which calls keep their
bodies, what is kept while the call runs, and how it is stored.

While a call runs, its :class:`CallBodies` only keeps references and slices, bounded in
size: the request bytes as they arrived, the whole response body, the stream bytes sent
(a passthrough, in the client's wire) or the canonical events sent (a translation). The
usage writer calls :meth:`CallBodies.render` in its thread, off the request path: a
stream is assembled into the message the client received (Anthropic: events folded by
:class:`~llmrelay.core.accumulate.Accumulator` and encoded as a Message; OpenAI: chunks
concatenated into a ``chat.completion``), then every body is redacted and cut to
``max_body_kb`` (flagged ``*_truncated``).

Bounds kept while the call runs: ``max_body_kb`` plus 1 KiB of a request or whole
response (the extra so that a secret across the cut is still redacted whole); 8 times
``max_body_kb`` of stream bytes (SSE framing is most of a stream); about twice
``max_body_kb`` of a translation's event text. Past them nothing more is kept and the
body is marked truncated. A stream that ended with an error is stored as the message so
far with an ``error`` member.

Redaction replaces each match with ``[REDACTED]``: first :data:`DEFAULT_REDACTIONS` (API
key shapes: Anthropic, OpenAI, llmrelay, AWS access key ids, Google API keys and OAuth
tokens, ``Bearer`` tokens), then the configured ``redact`` patterns, in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ..codecs import anthropic as anthropic_codec
from ..codecs import openai as openai_codec
from ..config.observability import BodyCapture, RequestLogConfig
from ..core.accumulate import Accumulator, StreamFailed
from ..core.events import (
    BlockDelta,
    Event,
    InputJSONDelta,
    TextDelta,
    ThinkingDelta,
)
from ..core.sse import SSEDecoder
from ..core.types import Response
from ..stores.usage import RequestBodies, UsageRecord

__all__ = ["DEFAULT_REDACTIONS", "REDACTED", "CallBodies", "CapturePolicy", "Redactor"]

REDACTED = "[REDACTED]"

#: Secrets redacted from every stored body, whatever the config says.
DEFAULT_REDACTIONS: tuple[str, ...] = (
    r"sk-ant-[A-Za-z0-9_\-]{8,}",  # Anthropic
    r"sk-llmrelay-[A-Za-z0-9_\-]{8,}",  # llmrelay virtual keys
    r"sk-[A-Za-z0-9_\-]{16,}",  # OpenAI (sk-proj-..., sk-svcacct-...) and look-alikes
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",  # AWS access key ids
    r"AIza[0-9A-Za-z_\-]{35}",  # Google API keys
    r"ya29\.[0-9A-Za-z_\-]{8,}",  # Google OAuth access tokens
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}",  # Authorization: Bearer <token>
)

_KIB = 1024
# Kept past the cap so that a secret across it is matched whole before the cut.
_SLACK = 1024
# Stream bytes kept per byte of the cap: SSE framing and per-event JSON are most of a
# stream (an Anthropic text delta of 5 characters is about 110 bytes on the wire).
_STREAM_FACTOR = 8
_EVENT_FACTOR = 2
# What an event costs besides its text, in the size estimate of a translation's events.
_EVENT_BASE = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class Redactor:
    """Replaces secrets in text with ``[REDACTED]``: the shipped patterns, then ``extra``
    (each a regular expression, compiled on its own so its inline flags apply to it)."""

    __slots__ = ("_patterns",)

    def __init__(self, extra: Sequence[str] = ()) -> None:
        shipped = re.compile("|".join(f"(?:{p})" for p in DEFAULT_REDACTIONS))
        self._patterns = (shipped, *(re.compile(p) for p in extra))

    def __call__(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub(REDACTED, text)
        return text


class _Settings:
    """What every capture of one gateway shares (bytes; the redactor)."""

    __slots__ = ("cap", "events_cap", "kept_cap", "redact", "stream_cap")

    def __init__(self, max_body_kb: int, redact: Redactor) -> None:
        self.cap = max_body_kb * _KIB
        self.kept_cap = self.cap + _SLACK
        self.stream_cap = self.cap * _STREAM_FACTOR + _SLACK
        self.events_cap = self.cap * _EVENT_FACTOR + _SLACK
        self.redact = redact


class CapturePolicy:
    """Which calls capture bodies: ``bodies`` of the caller's key name, else of its team,
    else the global one (``none``, ``errors``, ``all``)."""

    __slots__ = ("_by_key", "_by_team", "_default", "_settings")

    def __init__(self, cfg: RequestLogConfig) -> None:
        self._default: BodyCapture = cfg.bodies
        self._by_key = dict(cfg.bodies_by_key)
        self._by_team = dict(cfg.bodies_by_team)
        self._settings = _Settings(cfg.max_body_kb, Redactor(cfg.redact))

    @staticmethod
    def applies(cfg: RequestLogConfig) -> bool:
        """Whether any call can capture under ``cfg`` (else no policy is needed at all)."""
        modes = {cfg.bodies, *cfg.bodies_by_key.values(), *cfg.bodies_by_team.values()}
        return modes != {"none"}

    def mode(self, key: str, team: str | None) -> BodyCapture:
        mode = self._by_key.get(key)
        if mode is None and team is not None:
            mode = self._by_team.get(team)
        return self._default if mode is None else mode

    def capture(
        self, record: UsageRecord, surface: str, key: str, team: str | None
    ) -> CallBodies | None:
        """A capture for one call, attached to its row (``record.bodies``), or None."""
        mode = self.mode(key, team)
        if mode == "none":
            return None
        bodies = CallBodies(self._settings, surface, errors_only=mode == "errors")
        record.bodies = bodies
        return bodies


class CallBodies:
    """One call's bodies: a :class:`~llmrelay.pipeline.call.Capture` while the call runs,
    a :class:`~llmrelay.stores.usage.PendingBodies` for the usage writer after."""

    __slots__ = (
        "_chunks",
        "_cut",
        "_errors_only",
        "_events",
        "_request",
        "_request_cut",
        "_settings",
        "_size",
        "_surface",
        "_whole",
    )

    def __init__(self, settings: _Settings, surface: str, *, errors_only: bool) -> None:
        self._settings = settings
        self._surface = surface
        self._errors_only = errors_only
        self._request: bytes | None = None
        self._request_cut = False
        self._whole: bytes | None = None
        self._chunks: list[bytes] = []
        self._events: list[Event] = []
        self._size = 0
        self._cut = False

    # While the call runs: keep, bounded.

    def request(self, raw: bytes) -> None:
        cap = self._settings.kept_cap
        self._request = raw[:cap]  # no copy when it fits
        self._request_cut = len(raw) > cap

    def whole(self, body: bytes) -> None:
        cap = self._settings.kept_cap
        self._whole = body[:cap]
        self._cut = len(body) > cap

    def chunk(self, data: bytes) -> None:
        if self._cut:
            return
        if self._size + len(data) > self._settings.stream_cap:
            self._cut = True
            return
        self._chunks.append(data)
        self._size += len(data)

    def event(self, event: Event) -> None:
        if self._cut:
            return
        size = _EVENT_BASE
        if type(event) is BlockDelta:
            d = event.delta
            if type(d) is TextDelta:
                size += len(d.text)
            elif type(d) is InputJSONDelta:
                size += len(d.partial_json)
            elif type(d) is ThinkingDelta:
                size += len(d.thinking)
        if self._size + size > self._settings.events_cap:
            self._cut = True
            return
        self._events.append(event)
        self._size += size

    # In the usage writer's thread: assemble, redact, cut.

    def render(self, record: UsageRecord) -> RequestBodies | None:
        """The bodies to store for the finished call ``record``; None in ``errors`` mode
        for a call that succeeded (status 200, no error type)."""
        if self._errors_only and record.status == 200 and record.error_type is None:
            return None
        settings = self._settings
        request, request_cut = None, self._request_cut
        if self._request is not None:
            request, request_cut = _finish(_decode(self._request), request_cut, settings)
        response, response_cut = self._response(record)
        if response is not None:
            response, response_cut = _finish(response, response_cut, settings)
        if request is None and response is None:
            return None
        return RequestBodies(request, response, request_cut, response_cut)

    def _response(self, record: UsageRecord) -> tuple[str | None, bool]:
        if self._whole is not None:
            return _decode(self._whole), self._cut
        if self._chunks:
            raw = b"".join(self._chunks)
            fold = _anthropic_sse if self._surface == "anthropic" else _openai_sse
            try:
                return _dumps(fold(raw)), self._cut
            except Exception:  # not the stream it should be: keep what was sent
                return _decode(raw), self._cut
        if self._events:
            try:
                return _dumps(self._folded(record)), self._cut
            except Exception:
                return None, self._cut
        return None, self._cut

    def _folded(self, record: UsageRecord) -> dict[str, Any]:
        response, error = _fold(self._events)
        if self._surface == "anthropic":
            return _anthropic_message(response, error)
        out: dict[str, Any] = {}
        if response is not None:
            out = openai_codec.encode_response(response, model=record.model, created=int(record.ts))
        if error is not None:
            out["error"] = {"message": error["message"], "type": error["type"]}
        return out


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _finish(text: str, cut: bool, settings: _Settings) -> tuple[str, bool]:
    """``text`` redacted, made storable (no NUL or lone surrogate) and cut to the cap."""
    text = settings.redact(text)
    if not text.isascii() or "\x00" in text:
        text = _UNSTORABLE.sub("\ufffd", text)
    if len(text) > settings.cap // 4:  # may be past the cap in UTF-8 bytes
        data = text.encode()
        if len(data) > settings.cap:
            text = data[: settings.cap].decode("utf-8", "ignore")
            cut = True
    return text, cut


def _fold(events: Iterable[Event]) -> tuple[Response | None, dict[str, str] | None]:
    """The message so far and the stream's error, if it carried one."""
    acc = Accumulator()
    try:
        for event in events:
            acc.feed(event)
    except StreamFailed as failed:
        return acc.response, {"type": failed.error_type, "message": failed.message}
    return acc.response, None


def _anthropic_message(response: Response | None, error: dict[str, str] | None) -> dict[str, Any]:
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


def _anthropic_sse(raw: bytes) -> dict[str, Any]:
    """An Anthropic Messages stream -> the Message it describes."""
    events: list[Event] = []
    for data in _sse_objects(raw):
        if isinstance(data, dict):
            event = anthropic_codec.decode_event(data)
            if event is not None:
                events.append(event)
    response, error = _fold(events)
    if response is None and error is None:
        raise ValueError("no message_start")
    return _anthropic_message(response, error)


def _openai_sse(raw: bytes) -> dict[str, Any]:
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
