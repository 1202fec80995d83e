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
from .core import wirejson
from .core.events import Event
from .core.sse import SSEDecoder
from .core.types import Request, Response
from .errors import GatewayError, InvalidRequestError, anthropic_error_type
from .providers.base import Endpoint, Provider, ProviderRequest, ProviderResponse, Wire

__all__ = ["TranslatedResult", "WireCodec", "call_translated", "codec_for"]


class StreamDecoder(Protocol):
    def feed(self, chunk: bytes) -> list[Event]: ...
    def finish(self) -> list[Event]: ...


class WireCodec(Protocol):
    """What translation needs of one wire family (provider side)."""

    endpoint: Endpoint

    def encode_request(self, request: Request, model: str) -> dict[str, Any]: ...
    def decode_response(self, body: dict[str, Any]) -> Response: ...
    def stream_decoder(self, model: str) -> StreamDecoder: ...
    def decode_error(self, status: int, body: bytes) -> tuple[str, str]: ...


def _json_or_text(body: bytes) -> object:
    try:
        return wirejson.loads(body)
    except wirejson.InvalidJSON:
        return body.decode("utf-8", "replace")


class _AnthropicSSE:
    def __init__(self) -> None:
        self._sse = SSEDecoder()

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        for ev in self._sse.feed(chunk):
            data = _json_or_text(ev.data)
            if isinstance(data, dict):
                event = anthropic_codec.decode_event(data)
                if event is not None:
                    out.append(event)
        return out

    def finish(self) -> list[Event]:
        return []


class AnthropicWire:
    endpoint: Endpoint = "messages"

    def encode_request(self, request: Request, model: str) -> dict[str, Any]:
        body = dict(anthropic_codec.encode_request(request))
        body["model"] = model
        return body

    def decode_response(self, body: dict[str, Any]) -> Response:
        return anthropic_codec.decode_response(body)

    def stream_decoder(self, model: str) -> StreamDecoder:
        return _AnthropicSSE()

    def decode_error(self, status: int, body: bytes) -> tuple[str, str]:
        data = _json_or_text(body)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            return str(err.get("type") or anthropic_error_type(status)), str(err.get("message"))
        return anthropic_error_type(status), str(data)[:500]


class _OpenAISSE:
    def __init__(self, model: str) -> None:
        self._sse = SSEDecoder()
        self._decoder = openai_codec.StreamDecoder(model=model)
        self._done = False

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        for ev in self._sse.feed(chunk):
            if ev.data == b"[DONE]":
                out += self.finish()
                continue
            data = _json_or_text(ev.data)
            if isinstance(data, dict) and not self._done:
                out += self._decoder.feed(data)
        return out

    def finish(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        return self._decoder.finish()


class OpenAIWire:
    endpoint: Endpoint = "chat_completions"

    def encode_request(self, request: Request, model: str) -> dict[str, Any]:
        return openai_codec.encode_request(request, model=model)

    def decode_response(self, body: dict[str, Any]) -> Response:
        return openai_codec.decode_response(body)

    def stream_decoder(self, model: str) -> StreamDecoder:
        return _OpenAISSE(model)

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


async def _events(up: ProviderResponse, decoder: StreamDecoder) -> AsyncIterator[Event]:
    try:
        async for chunk in up.iter_chunks():
            for event in decoder.feed(chunk):
                yield event
        for event in decoder.finish():
            yield event
    finally:
        up.close()


async def call_translated(
    provider: Provider, request: Request, provider_model: str, max_output_tokens: int | None = None
) -> TranslatedResult:
    """Call ``provider`` with a canonical request, in the provider's own wire.

    Raises:
        InvalidRequestError: the request uses a feature the provider's API cannot express
            (400, naming the field and the model).
        UpstreamUnreachable, UpstreamTimeout: as :meth:`Provider.send`.
    """
    codec = codec_for(provider.wire)
    if max_output_tokens is not None and (request.max_tokens or 0) > max_output_tokens:
        request.max_tokens = max_output_tokens
    try:
        body = codec.encode_request(request, provider_model)
    except (openai_codec.Untranslatable, anthropic_codec.CodecError) as err:
        raise InvalidRequestError(
            f"{err} (not supported when {request.model!r} is served by {provider.account!r})"
        ) from None
    up = await provider.send(ProviderRequest(codec.endpoint, body, [], "", request.stream))
    headers = {k: v for k, v in up.headers.items() if k.lower() in _RELAY}
    rid = up.upstream_request_id
    if up.status != 200:
        try:
            raw = await up.read()
        finally:
            up.close()
        return TranslatedResult(up.status, headers, rid, error=codec.decode_error(up.status, raw))
    if request.stream and up.is_event_stream:
        return TranslatedResult(
            200, headers, rid, events=_events(up, codec.stream_decoder(request.model))
        )
    try:
        raw = await up.read()
    finally:
        up.close()
    data = _json_or_text(raw)
    if not isinstance(data, dict):
        raise GatewayError(
            f"provider {provider.account!r} answered 200 with a body that is not a JSON object",
            status=502,
        )
    return TranslatedResult(200, headers, rid, response=codec.decode_response(data))
