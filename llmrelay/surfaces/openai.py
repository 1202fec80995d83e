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
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..codecs import openai as codec
from ..core.types import Request
from ..core.usage import Usage
from ..errors import GatewayError, InvalidRequestError, NotFoundError
from ..providers.base import ProviderRequest, ProviderResponse
from ..routing.executor import Failure, Success, retry_after_s
from ..routing.table import Route
from ..stores.usage import UsageRecord
from .call import AttemptResult, Call, JSONAnswer, send
from .common import (
    body_size,
    finish_record,
    forward_headers,
    json_content,
    log_refused,
    new_request_id,
    provider_models,
    read_json,
    target_name,
)
from .openai_stream import OpenAIRelay, gated_stream, usage_from_openai
from .openai_translated import attempt_translated, decode_canonical

if TYPE_CHECKING:
    from ..app import Gateway
    from ..policy.admission import Admission

__all__ = ["OpenAISurface", "openai_error_response"]

PREFIXES = ("", "/openai")


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
                "id": name,
                "object": "model",
                "created": self._gw.created_unix,
                "owned_by": owner,
            }
            for name, owner in self._gw.router.names()
            if caller.models is None or name in caller.models
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
            target = self._gw.router.resolve(
                model, key=caller.name, team=caller.team, headers=request.headers
            )
            if target is None:
                raise NotFoundError(
                    f"The model {model!r} is not routed by this gateway (GET /v1/models lists them)"
                )
            record.stream = body.get("stream") is True
            # After routing rules: the key must be allowed both the model it asked for and
            # the one a rule chose; the chosen one's limits apply.
            routed = target_name(target)
            if routed != model:
                self._gw.policy.check_model(caller, model)
            admission = await self._gw.policy.admit(
                caller, routed, provider_models(target), body, await body_size(request)
            )
            call = Call(self._gw, request, record, usage, started)
            # The provider send: one attempt for an account/model, the executor for a
            # virtual model; the answer or the final error goes out from here.
            return await send(call, target, _Attempter(call, body))
        except GatewayError as err:
            record.status = err.status
            record.error_type = err.error_type
            return _gateway_error(err, rid)
        finally:
            finish_record(self._gw, request, record, usage, started, admission)


class _Attempter:
    """Tries one target for one OpenAI-surface call: a passthrough to an OpenAI-wire
    provider, a translation to any other."""

    __slots__ = ("_body", "_call", "_canonical", "_headers")

    def __init__(self, call: Call, body: dict[str, Any]) -> None:
        self._call = call
        self._body = body
        self._headers = forward_headers(call.request.headers)
        self._canonical: Request | None = None

    async def attempt(self, route: Route, gate: bool) -> AttemptResult:
        call = self._call
        record = call.record
        if route.provider.wire != "openai":
            if self._canonical is None:
                default = call.gateway.settings.translation.default_max_tokens
                self._canonical = decode_canonical(self._body, record.model, default)
            return await attempt_translated(
                record.request_id, self._body, self._canonical, route, gate
            )
        # Each attempt starts from the client's body; a single attempt may change it in place.
        body = dict(self._body) if gate else self._body
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
                "chat_completions", body, self._headers, call.request.query_string, record.stream
            )
        )
        if record.stream and up.status == 200 and up.is_event_stream:
            headers = _headers(up, record.request_id)
            if gate:
                return await gated_stream(up, headers, strip_usage)
            return Success(OpenAIRelay(up, headers, strip_usage))
        try:
            data = await up.read()
        finally:
            up.close()
        if up.status < 400:
            reader = partial(_usage_from_json, data) if up.status == 200 else None
            answer = JSONAnswer(
                up.status, data, _headers(up, record.request_id), up.upstream_request_id, reader
            )
            return Success(answer)
        error_type, message = codec.error_from_openai(up.status, _loads(data))
        return Failure(
            up.status,
            error_type,
            message,
            retry_after_s=retry_after_s(up.headers),
            body=data,
            headers=up.headers,
            upstream_request_id=up.upstream_request_id,
        )

    def error_response(self, failure: Failure, headers: dict[str, str]) -> web.Response:
        rid = self._call.record.request_id
        out = {**failure.headers, "x-request-id": rid, "request-id": rid}
        if failure.upstream_request_id is not None:
            out["x-llmrelay-upstream-request-id"] = failure.upstream_request_id
        out.update(headers)
        body = failure.body
        if body is None:
            error = codec.error_to_openai(failure.status, failure.error_type, failure.message)
            body = orjson.dumps(error)
            out = json_content(out)
        return web.Response(status=failure.status, body=body, headers=out)


def _usage_from_json(data: bytes, usage: Usage) -> None:
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        usage_from_openai(orjson.loads(data).get("usage"), usage)


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
