"""Calls across wire families: a client surface and a provider that speak different APIs.

The surface decodes its request into the canonical :class:`~llmrelay.core.types.Request`;
here the provider's wire codec encodes it, the provider is called, and its answer comes
back as canonical values: a :class:`Response`, an async iterator of canonical events, or
an error (Anthropic error type + message + the provider's status). The surface then
encodes those in its own wire. Same-family calls never come here (they are passthroughs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .codecs import anthropic as anthropic_codec
from .codecs import openai as openai_codec
from .codecs._shape import CodecError
from .core import wirejson
from .core.events import Event
from .core.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEventTooLarge
from .core.types import Request, Response
from .errors import InvalidRequestError, UpstreamProtocolError, anthropic_error_type
from .providers.base import Endpoint, Provider, ProviderRequest, ProviderResponse, Wire
from .routing.gate import DEFAULT_MAX_PREAMBLE_BYTES

__all__ = ["TranslatedResult", "WireCodec", "WireLimits", "call_translated", "codec_for"]


class StreamDecoder(Protocol):
    def feed(self, chunk: bytes) -> list[Event]: ...
    def finish(self) -> list[Event]: ...


class WireCodec(Protocol):
    """What translation needs of one wire family (provider side). The decoders raise
    :class:`CodecError` with what the provider sent wrong (``"a malformed response:
    content: expected a list"``) and :class:`SSEEventTooLarge`; :func:`call_translated`
    names the provider in the :class:`UpstreamProtocolError` it raises for them."""

    endpoint: Endpoint

    def encode_request(self, request: Request, model: str) -> dict[str, Any]: ...
    def decode_response(self, body: dict[str, Any]) -> Response: ...
    def stream_decoder(self, model: str, limits: WireLimits) -> StreamDecoder: ...
    def decode_error(self, status: int, body: bytes) -> tuple[str, str]: ...


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Bounds on what a provider may send: ``max_json_depth`` levels of JSON nesting in a
    body or event (``server.max_json_depth``), ``max_event_bytes`` bytes in one SSE event
    (``server.max_sse_event_mb``), ``max_preamble_bytes`` bytes of a stream's preamble
    held by the first-chunk gate (``server.max_stream_preamble_kb``, ``routing/gate.py``)."""

    max_json_depth: int = 128
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_preamble_bytes: int = DEFAULT_MAX_PREAMBLE_BYTES


def _json_or_text(body: bytes) -> object:
    try:
        return wirejson.loads(body)
    except wirejson.InvalidJSON:
        return body.decode("utf-8", "replace")


def _event_data(data: bytes, max_depth: int) -> dict[str, Any]:
    """One SSE event's ``data`` as the JSON object both wires send.

    Raises:
        CodecError: not JSON, not an object, or nested too deeply.
    """
    try:
        value = wirejson.loads(data, max_depth=max_depth)
    except wirejson.TooDeep:
        raise CodecError(
            f"a stream event nested deeper than {max_depth} levels (server.max_json_depth)"
        ) from None
    except wirejson.InvalidJSON:
        raise CodecError(f"a stream event whose data is not JSON: {_excerpt(data)}") from None
    if not isinstance(value, dict):
        raise CodecError(f"a stream event whose data is not a JSON object: {_excerpt(data)}")
    return value


def _excerpt(data: bytes) -> str:
    text = data[:80].decode("utf-8", "replace")
    return repr(text + "..." if len(data) > 80 else text)


class _AnthropicSSE:
    def __init__(self, limits: WireLimits) -> None:
        self._sse = SSEDecoder(limits.max_event_bytes)
        self._max_depth = limits.max_json_depth
        # A malformed event: the events before it in the same read go out first (their
        # usage counts), then this is raised.
        self._pending: CodecError | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        if self._pending is not None:
            raise self._pending
        out: list[Event] = []
        for ev in self._sse.feed(chunk):
            if not ev.data or ev.data == b"[DONE]":  # no data; some proxies add [DONE]
                continue
            try:
                data = _event_data(ev.data, self._max_depth)
                try:
                    event = anthropic_codec.decode_event(data)
                except CodecError as err:
                    raise CodecError(f"a malformed stream event: {err}") from None
            except CodecError as err:
                self._pending = err
                if not out:
                    raise
                return out
            if event is not None:
                out.append(event)
        return out

    def finish(self) -> list[Event]:
        if self._pending is not None:
            raise self._pending
        self._sse.finish()
        return []


class AnthropicWire:
    endpoint: Endpoint = "messages"

    def encode_request(self, request: Request, model: str) -> dict[str, Any]:
        body = dict(anthropic_codec.encode_request(request))
        body["model"] = model
        return body

    def decode_response(self, body: dict[str, Any]) -> Response:
        try:
            return anthropic_codec.decode_response(body)
        except CodecError as err:
            raise CodecError(f"a malformed response: {err}") from None

    def stream_decoder(self, model: str, limits: WireLimits) -> StreamDecoder:
        return _AnthropicSSE(limits)

    def decode_error(self, status: int, body: bytes) -> tuple[str, str]:
        data = _json_or_text(body)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            return str(err.get("type") or anthropic_error_type(status)), str(err.get("message"))
        return anthropic_error_type(status), str(data)[:500]


class _OpenAISSE:
    def __init__(self, model: str, limits: WireLimits) -> None:
        self._sse = SSEDecoder(limits.max_event_bytes)
        self._max_depth = limits.max_json_depth
        self._decoder = openai_codec.StreamDecoder(model=model)
        self._done = False
        self._pending: CodecError | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        if self._pending is not None:
            raise self._pending
        out: list[Event] = []
        for ev in self._sse.feed(chunk):
            if ev.data == b"[DONE]":
                out += self._end()
                continue
            if not ev.data or self._done:
                continue
            try:
                data = _event_data(ev.data, self._max_depth)
                try:
                    out += self._decoder.feed(data)
                except CodecError as err:
                    raise CodecError(f"a malformed stream chunk: {err}") from None
            except CodecError as err:
                # As in _AnthropicSSE: what came before in this read goes out first.
                self._pending = err
                if not out:
                    raise
                return out
        return out

    def finish(self) -> list[Event]:
        if self._pending is not None:
            raise self._pending
        self._sse.finish()
        if not self._done and not self._decoder.finished:
            # Neither [DONE] nor a finish_reason: the stream was cut, not finished.
            raise CodecError("a stream that ended before [DONE]")
        return self._end()

    def _end(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        return self._decoder.finish()


class OpenAIWire:
    endpoint: Endpoint = "chat_completions"

    def encode_request(self, request: Request, model: str) -> dict[str, Any]:
        return openai_codec.encode_request(request, model=model)

    def decode_response(self, body: dict[str, Any]) -> Response:
        try:
            return openai_codec.decode_response(body)
        except CodecError as err:
            raise CodecError(f"a malformed response: {err}") from None

    def stream_decoder(self, model: str, limits: WireLimits) -> StreamDecoder:
        return _OpenAISSE(model, limits)

    def decode_error(self, status: int, body: bytes) -> tuple[str, str]:
        return openai_codec.error_from_openai(status, _json_or_text(body))


_CODECS: dict[Wire, WireCodec] = {"anthropic": AnthropicWire(), "openai": OpenAIWire()}


def codec_for(wire: Wire) -> WireCodec:
    return _CODECS[wire]


@dataclass(slots=True)
class TranslatedResult:
    """A provider's answer in canonical form. Exactly one of ``response``, ``events`` and
    ``error`` is set; ``status`` is the provider's HTTP status; ``headers`` are the provider
    headers worth relaying (``retry-after``, rate-limit headers)."""

    status: int
    headers: Mapping[str, str]
    upstream_request_id: str | None
    response: Response | None = None
    events: AsyncIterator[Event] | None = None
    error: tuple[str, str] | None = None


_RELAY = ("retry-after", "retry-after-ms", "x-should-retry")


def _protocol_error(account: str, err: CodecError | SSEEventTooLarge) -> UpstreamProtocolError:
    if isinstance(err, SSEEventTooLarge):
        return err.for_account(account)
    return UpstreamProtocolError(f"provider {account!r} sent {err}")


async def _events(
    up: ProviderResponse, decoder: StreamDecoder, account: str
) -> AsyncIterator[Event]:
    try:
        async for chunk in up.iter_chunks():
            for event in decoder.feed(chunk):
                yield event
        for event in decoder.finish():
            yield event
    except (CodecError, SSEEventTooLarge) as err:
        raise _protocol_error(account, err) from None
    finally:
        up.close()


async def call_translated(
    provider: Provider,
    request: Request,
    provider_model: str,
    max_output_tokens: int | None = None,
    *,
    limits: WireLimits = WireLimits(),
    upstream_headers: list[tuple[str, str]] | None = None,
) -> TranslatedResult:
    """Call ``provider`` with a canonical request, in the provider's own wire;
    ``upstream_headers`` go on the provider request (the trace context; none of the
    client's).

    What the provider sends is held to its wire and to ``limits``; the events iterator
    raises :class:`UpstreamProtocolError` in the same cases as this function.

    Raises:
        InvalidRequestError: the request uses a feature the provider's API cannot express
            (400, naming the field and the model).
        UpstreamProtocolError: the provider answered 200 with something its wire does not
            allow: a body that is not a JSON object, a wrong-shaped field, JSON nested
            deeper than ``limits.max_json_depth``, an SSE event over
            ``limits.max_event_bytes`` (502, naming the provider and what was wrong).
        UpstreamUnreachable, UpstreamTimeout: as :meth:`Provider.send`.
    """
    codec = codec_for(provider.wire)
    if max_output_tokens is not None and (request.max_tokens or 0) > max_output_tokens:
        request.max_tokens = max_output_tokens
    try:
        body = codec.encode_request(request, provider_model)
    except (openai_codec.Untranslatable, CodecError) as err:
        raise InvalidRequestError(
            f"{err} (not supported when {request.model!r} is served by {provider.account!r})"
        ) from None
    up = await provider.send(
        ProviderRequest(codec.endpoint, body, upstream_headers or [], "", request.stream)
    )
    headers = {k: v for k, v in up.headers.items() if k.lower() in _RELAY}
    rid = up.upstream_request_id
    if up.status != 200:
        try:
            raw = await up.read()
        finally:
            up.close()
        return TranslatedResult(up.status, headers, rid, error=codec.decode_error(up.status, raw))
    if request.stream and up.is_event_stream:
        decoder = codec.stream_decoder(request.model, limits)
        return TranslatedResult(200, headers, rid, events=_events(up, decoder, provider.account))
    try:
        raw = await up.read()
    finally:
        up.close()
    try:
        response = codec.decode_response(_response_body(raw, limits.max_json_depth))
    except CodecError as err:
        raise _protocol_error(provider.account, err) from None
    return TranslatedResult(200, headers, rid, response=response)


def _response_body(raw: bytes, max_depth: int) -> dict[str, Any]:
    try:
        data = wirejson.loads(raw, max_depth=max_depth)
    except wirejson.TooDeep:
        raise CodecError(
            f"a response nested deeper than {max_depth} levels (server.max_json_depth)"
        ) from None
    except wirejson.InvalidJSON:
        raise CodecError(f"a 200 response whose body is not JSON: {_excerpt(raw)}") from None
    if not isinstance(data, dict):
        raise CodecError(f"a 200 response whose body is not a JSON object: {_excerpt(raw)}")
    return data
