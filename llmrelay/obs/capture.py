"""Body capture for the request log (``observability.request_log``): which calls keep their
bodies, what is kept while the call runs, and how it is stored.

While a call runs, its :class:`CallBodies` only keeps references and slices, bounded in
size: the request bytes as they arrived, the whole response body, the stream bytes sent
(a passthrough, in the client's wire) or the canonical events sent (a translation). The
usage writer calls :meth:`CallBodies.render` in its thread, off the request path: a
stream is assembled into the message the client received (:mod:`llmrelay.obs.assemble`),
then every body is redacted and cut to ``max_body_kb`` (flagged ``*_truncated``).

Bounds kept while the call runs: ``max_body_kb`` plus 1 KiB of a request or whole
response (the extra so that a secret across the cut is still redacted whole); 8 times
``max_body_kb`` of stream bytes (SSE framing is most of a stream); about twice
``max_body_kb`` of a translation's event text. Past them nothing more is kept and the
body is marked truncated. A stream that ended with an error is stored as the message so
far with an ``error`` member; one that never finished (it failed, or the client left)
has ``stop_reason: null`` on the Anthropic surface and ``finish_reason: null`` on the
OpenAI one (as in the ``chat.completion.chunk`` stream the client got).

Redaction replaces each match with ``[REDACTED]``: first :data:`DEFAULT_REDACTIONS` (API
key shapes: Anthropic, OpenAI, llmrelay, AWS access key ids, Google API keys and OAuth
tokens, ``Bearer`` tokens), then the configured ``redact`` patterns, in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from ..codecs import openai as openai_codec
from ..config.observability import BodyCapture, RequestLogConfig
from ..core.events import (
    BlockDelta,
    Event,
    InputJSONDelta,
    TextDelta,
    ThinkingDelta,
)
from ..stores.usage import RequestBodies, UsageRecord
from .assemble import anthropic_message, anthropic_stream, fold_events, openai_stream

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


#: Every match of :data:`DEFAULT_REDACTIONS` contains one of these, lowercased: a text
#: without any (most bodies) skips the shipped patterns' scan (~17 ns a byte) for a
#: lowercase copy and six substring searches (~2 ns a byte).
_ANCHORS = ("sk-", "akia", "asia", "aiza", "ya29.", "bearer")


class Redactor:
    """Replaces secrets in text with ``[REDACTED]``: the shipped patterns, then ``extra``
    (each a regular expression, compiled on its own so its inline flags apply to it)."""

    __slots__ = ("_extra", "_shipped")

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self._shipped = re.compile("|".join(f"(?:{p})" for p in DEFAULT_REDACTIONS))
        self._extra = tuple(re.compile(p) for p in extra)

    def __call__(self, text: str) -> str:
        lowered = text.lower()
        if any(anchor in lowered for anchor in _ANCHORS):
            text = self._shipped.sub(REDACTED, text)
        for pattern in self._extra:
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
            fold = anthropic_stream if self._surface == "anthropic" else openai_stream
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
        response, error = fold_events(self._events)
        if self._surface == "anthropic":
            return anthropic_message(response, error)
        out: dict[str, Any] = {}
        if response is not None:
            out = openai_codec.encode_response(response, model=record.model, created=int(record.ts))
            if response.stop_reason is None:
                # Never finished (the client left, or the stream failed): the codec's
                # None -> "stop" is for responses sent; store what the client got, as
                # the Anthropic surface's ``stop_reason: null`` and a passthrough's fold.
                for choice in out["choices"]:
                    choice["finish_reason"] = None
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
