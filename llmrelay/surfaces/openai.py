"""The OpenAI Chat Completions surface: ``POST /v1/chat/completions`` and ``GET /v1/models``
for OpenAI clients, also under ``/openai``.

OpenAI-wire providers get a passthrough (only ``model`` and the credential change);
Anthropic-wire providers get the request translated through the canonical model and the
answer translated back, streams included. Errors use OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` (``openai/_exceptions.py``).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..codecs import openai as codec
from ..core.events import MessageStart
from ..core.replay import aiter_events, response_events
from ..core.usage import Usage
from ..errors import GatewayError, InvalidRequestError, NotFoundError
from ..providers.base import ProviderRequest, ProviderResponse
from ..routing.table import Route
from ..stores.usage import UsageRecord
from ..translation import call_translated
from .common import (
    body_size,
    finish_record,
    forward_headers,
    log_refused,
    new_request_id,
    read_json,
    usage_from_event,
    write_events,
)
from .openai_stream import OpenAIStreamTap, usage_from_openai

if TYPE_CHECKING:
    from ..app import Gateway
    from ..policy.admission import Admission

__all__ = ["OpenAISurface", "openai_error_response"]

PREFIXES = ("", "/openai")
_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


def openai_error_response(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: dict[str, str] | None = None,
    openai_type: str | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(codec.error_to_openai(status, error_type, message, openai_type)),
        content_type="application/json",
        headers={**(headers or {}), "x-request-id": request_id, "request-id": request_id},
    )


def _gateway_error(err: GatewayError, request_id: str) -> web.Response:
    return openai_error_response(
        err.status, err.error_type, err.message, request_id, err.headers, err.openai_type
    )


class OpenAISurface:
    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway
        self._max_body = int(gateway.settings.server.max_request_body_mb * 1024 * 1024)

    def add_routes(self, app: web.Application) -> None:
        for p in PREFIXES:
            app.router.add_post(f"{p}/v1/chat/completions", self.chat_completions)
        app.router.add_get("/openai/v1/models", self.list_models)

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models`` in OpenAI's list shape (``openai/types/model.py``)."""
        rid = new_request_id()
        try:
            caller = self._gw.keys.authenticate(request.headers)
        except GatewayError as err:
            return _gateway_error(err, rid)
        data = [
            {
                "id": r.public_model,
                "object": "model",
                "created": self._gw.created_unix,
                "owned_by": r.account,
            }
            for r in self._gw.routes
            if caller.models is None or r.public_model in caller.models
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}),
            content_type="application/json",
            headers={"x-request-id": rid, "request-id": rid},
        )

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        rid = new_request_id()
        started = time.perf_counter()
        try:
            caller = self._gw.keys.authenticate(request.headers)
        except GatewayError as err:
            log_refused(request, err.status, rid)
            return _gateway_error(err, rid)
        record = UsageRecord(
            ts=time.time(),
            request_id=rid,
            key_name=caller.name,
            model="",
            provider="",
            provider_model="",
            endpoint="chat_completions",
            stream=False,
            status=499,
            key_id=caller.key_id,
            team=caller.team,
        )
        usage = Usage()
        admission: Admission | None = None
        try:
            body = await read_json(request, self._max_body)
            model = body.get("model")
            if not isinstance(model, str):
                raise InvalidRequestError(
                    "model: expected a string such as 'account/model'"
                    + (" (the field is missing)" if model is None else "")
                )
            record.model = model
            route = self._gw.routes.get(model)
            if route is None:
                raise NotFoundError(
                    f"The model {model!r} is not routed by this gateway (GET /v1/models lists them)"
                )
            record.provider = route.account
            record.provider_model = route.provider_model
            record.stream = body.get("stream") is True
            admission = await self._gw.policy.admit(
                caller, model, (route.provider_model,), body, await body_size(request)
            )
            if route.provider.wire == "openai":
                return await self._passthrough(request, body, route, record, usage, started)
            return await self._translated(request, body, route, record, usage, started)
        except GatewayError as err:
            record.status = err.status
            record.error_type = err.error_type
            return _gateway_error(err, rid)
        finally:
            finish_record(self._gw, request, record, usage, started, admission)

    async def _passthrough(
        self,
        request: web.Request,
        body: dict[str, Any],
        route: Route,
        record: UsageRecord,
        usage: Usage,
        started: float,
    ) -> web.StreamResponse:
        body["model"] = route.provider_model
        route.cap_body(body, "max_tokens", "max_completion_tokens")
        strip_usage = False
        if record.stream:
            # Ask for usage so it can be recorded; hide the extra chunk from a client that
            # did not ask for it.
            options = body.get("stream_options")
            if not isinstance(options, dict):
                options = {}
            if options.get("include_usage") is not True:
                strip_usage = True
                body["stream_options"] = {**options, "include_usage": True}
        up = await route.provider.send(
            ProviderRequest(
                "chat_completions",
                body,
                forward_headers(request.headers),
                request.query_string,
                record.stream,
            )
        )
        record.upstream_request_id = up.upstream_request_id
        if record.stream and up.status == 200 and up.is_event_stream:
            return await self._relay(request, up, record, usage, started, strip_usage)
        try:
            data = await up.read()
        finally:
            up.close()
        record.status = up.status
        if up.status == 200:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                usage_from_openai(orjson.loads(data).get("usage"), usage)
        else:
            record.error_type = codec.error_from_openai(up.status, _loads(data))[0]
        return web.Response(status=up.status, body=data, headers=_headers(up, record.request_id))

    async def _relay(
        self,
        request: web.Request,
        up: ProviderResponse,
        record: UsageRecord,
        usage: Usage,
        started: float,
        strip_usage: bool,
    ) -> web.StreamResponse:
        tap = OpenAIStreamTap(usage, strip_usage=strip_usage)
        resp = web.StreamResponse(status=200, headers=_headers(up, record.request_id))
        try:
            await resp.prepare(request)
            try:
                async for chunk in up.iter_chunks():
                    if record.ttft_s is None:
                        record.ttft_s = time.perf_counter() - started
                    out = tap.feed(chunk)
                    if out:
                        await resp.write(out)
            except GatewayError as err:
                tap.error_type = err.error_type
                error = codec.error_to_openai(err.status, err.error_type, err.message)
                await resp.write(b"data: " + orjson.dumps(error) + b"\n\n")
            record.status = 200
            record.error_type = tap.error_type
            await resp.write_eof()
        except ConnectionResetError:
            record.status = 499
            record.error_type = "client_disconnected"
        finally:
            up.close()
        return resp

    async def _translated(
        self,
        request: web.Request,
        body: dict[str, Any],
        route: Route,
        record: UsageRecord,
        usage: Usage,
        started: float,
    ) -> web.StreamResponse:
        rid = record.request_id
        try:
            canonical = codec.decode_request(body)
        except ValueError as err:
            raise InvalidRequestError(str(err)) from None
        canonical.model = record.model
        if canonical.max_tokens is None:
            canonical.max_tokens = self._gw.settings.translation.default_max_tokens
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        result = await call_translated(
            route.provider, canonical, route.provider_model, route.max_output_tokens
        )
        record.upstream_request_id = result.upstream_request_id
        if result.error is not None:
            error_type, message = result.error
            record.status = result.status
            record.error_type = error_type
            return openai_error_response(
                result.status, error_type, message, rid, dict(result.headers)
            )
        created = int(time.time())
        if result.response is not None and not canonical.stream:
            record.status = 200
            usage_from_event(MessageStart(message=result.response), usage)
            out = codec.encode_response(result.response, model=record.model, created=created)
            return web.Response(
                body=orjson.dumps(out),
                content_type="application/json",
                headers={**result.headers, "x-request-id": rid, "request-id": rid},
            )
        events = result.events
        if events is None:
            assert result.response is not None
            events = aiter_events(response_events(result.response))
        encoder = codec.StreamEncoder(
            id="chatcmpl-" + rid.removeprefix("req_"),
            model=record.model,
            created=created,
            include_usage=include_usage,
        )
        resp = web.StreamResponse(
            status=200,
            headers={**result.headers, **_SSE_HEADERS, "x-request-id": rid, "request-id": rid},
        )
        return await write_events(
            request,
            resp,
            events,
            record,
            usage,
            started,
            encode=lambda event: b"".join(
                b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in encoder.feed(event)
            ),
            encode_error=_error_chunk,
            end=b"data: [DONE]\n\n",
        )


def _error_chunk(err: GatewayError) -> bytes:
    error = codec.error_to_openai(err.status, err.error_type, err.message)
    return b"data: " + orjson.dumps(error) + b"\n\n"


def _headers(up: ProviderResponse, request_id: str) -> dict[str, str]:
    headers = {**up.headers, "x-request-id": request_id, "request-id": request_id}
    if up.upstream_request_id is not None:
        headers["x-llmrelay-upstream-request-id"] = up.upstream_request_id
    return headers


def _loads(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")
