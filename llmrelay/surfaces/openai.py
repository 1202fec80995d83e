"""The OpenAI Chat Completions surface: ``POST /v1/chat/completions`` and ``GET /v1/models``
for OpenAI clients, also under ``/openai``.

A call runs through the call pipeline (``pipeline/run.py``); this module gives it OpenAI's
error envelope and the attempter. OpenAI-wire providers get a passthrough (only ``model``
and the credential change); Anthropic-wire providers get the request translated through
the canonical model and the answer translated back, streams included. Errors use OpenAI's
envelope ``{"error": {"message", "type", "param", "code"}}`` (``openai/_exceptions.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from ..codecs import openai as codec
from ..core.text import clip
from ..core.types import Request
from ..core.usage import Usage
from ..errors import GatewayError, ModelNotFoundError
from ..pipeline.answers import JSONAnswer
from ..pipeline.body import BodyLimits
from ..pipeline.call import Call, Parts, SurfaceName
from ..pipeline.run import guarded, new_request_id, run_call
from ..pipeline.surface import AttemptResult
from ..providers.base import Endpoint, ProviderRequest, ProviderResponse
from ..providers.headers import HeaderFilter, client_headers
from ..routing.executor import Failure, Success, retry_after_s
from ..routing.table import Route
from ..translation import WireLimits
from .common import json_content, json_object, not_json
from .openai_stream import gated_stream, relay_answer, usage_from_openai
from .openai_translated import attempt_translated, decode_canonical

__all__ = ["OpenAISurface", "openai_error_response", "openai_gateway_error"]

PREFIXES = ("", "/openai")


def openai_error_response(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
    openai_type: str | None = None,
    code: str | None = None,
) -> web.Response:
    """An error in OpenAI's envelope (``openai/_exceptions.py`` reads ``error.message``,
    ``type``, ``param``, ``code``), with ``x-request-id`` and ``request-id``."""
    return web.Response(
        status=status,
        body=orjson.dumps(codec.error_to_openai(status, error_type, message, openai_type, code)),
        content_type="application/json",
        headers={**(headers or {}), "x-request-id": request_id, "request-id": request_id},
    )


def openai_gateway_error(
    err: GatewayError, request_id: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A gateway error in OpenAI's envelope, its own headers (``Allow``, ``retry-after``)
    over ``headers``."""
    return openai_error_response(
        err.status,
        err.error_type,
        err.message,
        request_id,
        {**(headers or {}), **err.headers},
        err.openai_type,
        err.openai_code,
    )


class OpenAISurface:
    """OpenAI's API shape; ``created_unix`` dates the model list."""

    name: SurfaceName = "openai"

    def __init__(
        self,
        parts: Parts,
        limits: BodyLimits,
        wire: WireLimits,
        headers: HeaderFilter,
        created_unix: int,
    ) -> None:
        self._parts = parts
        self._limits = limits
        self._wire = wire
        self._headers = headers
        self._created_unix = created_unix

    def add_routes(self, app: web.Application) -> None:
        for p in PREFIXES:
            app.router.add_post(f"{p}/v1/chat/completions", self.chat_completions)
        # Plain /v1/models and /v1/models/{id} are shared with Anthropic's; app.py dispatches.
        app.router.add_get("/openai/v1/models", guarded(self.list_models, self))
        app.router.add_get("/openai/v1/models/{model_id:.+}", guarded(self.get_model, self))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await run_call(self._parts, self, self._limits, request, "chat_completions")

    def error_response(
        self, err: GatewayError, request_id: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return openai_gateway_error(err, request_id, headers)

    def unknown_model(self, model: str) -> str:
        return f"The model {model!r} is not routed by this gateway (GET /v1/models lists them)"

    def attempter(self, call: Call, endpoint: Endpoint, body: dict[str, Any]) -> _Attempter:
        return _Attempter(call, body, self._wire, self._headers)

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models`` in OpenAI's list shape (``openai/types/model.py``)."""
        rid = new_request_id()
        try:
            caller = self._parts.keys.authenticate(request.headers)
        except GatewayError as err:
            return self.error_response(err, rid)
        data = [
            {
                "id": name,
                "object": "model",
                "created": self._created_unix,
                "owned_by": owner,
            }
            for name, owner in self._parts.router.names()
            if caller.models is None or name in caller.models
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}),
            content_type="application/json",
            headers={"x-request-id": rid, "request-id": rid},
        )

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models/{id}`` as OpenAI's ``Model`` (``openai/types/model.py``: ``id``,
        ``object: "model"``, ``created`` in Unix seconds, ``owned_by``: the account that
        serves it, ``llmrelay`` for a virtual model); 404 ``model_not_found`` for a name
        the gateway does not route, 403 for one the key may not use."""
        rid = new_request_id()
        try:
            caller = self._parts.keys.authenticate(request.headers)
            model_id = request.match_info["model_id"]
            owners = dict(self._parts.router.names())
            if model_id not in owners:
                raise ModelNotFoundError(self.unknown_model(clip(model_id)))
            self._parts.policy.check_model(caller, model_id)
        except GatewayError as err:
            return self.error_response(err, rid)
        model = {
            "id": model_id,
            "object": "model",
            "created": self._created_unix,
            "owned_by": owners[model_id],
        }
        return web.Response(
            body=orjson.dumps(model),
            content_type="application/json",
            headers={"x-request-id": rid, "request-id": rid},
        )


class _Attempter:
    """Tries one target for one OpenAI-surface call: a passthrough to an OpenAI-wire
    provider, a translation to any other."""

    __slots__ = ("_body", "_call", "_canonical", "_headers", "_wire")

    def __init__(
        self, call: Call, body: dict[str, Any], wire: WireLimits, headers: HeaderFilter
    ) -> None:
        self._call = call
        self._body = body
        self._wire = wire
        self._headers = client_headers(call.request.headers, headers)
        self._canonical: Request | None = None

    async def attempt(self, route: Route, gate: bool) -> AttemptResult:
        call = self._call
        record = call.record
        if route.provider.wire != "openai":
            if self._canonical is None:
                default = call.parts.settings.translation.default_max_tokens
                self._canonical = decode_canonical(self._body, record.model, default)
            return await attempt_translated(
                record.request_id,
                self._body,
                self._canonical,
                route,
                gate,
                self._wire,
                call.upstream_headers([]),
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
                "chat_completions",
                body,
                call.upstream_headers(self._headers),
                call.request.query_string,
                record.stream,
            )
        )
        account = route.account
        if record.stream and up.status == 200 and up.is_event_stream:
            headers = _headers(up, record.request_id)
            limit = self._wire.max_event_bytes
            if gate:
                return await gated_stream(
                    up, headers, account, strip_usage, limit, self._wire.max_preamble_bytes
                )
            return Success(relay_answer(up, headers, account, strip_usage, limit))
        try:
            data = await up.read()
        finally:
            up.close()
        if up.status < 400:
            parsed = json_object(data) if up.status == 200 else None
            if up.status == 200 and (parsed is None or record.stream):
                return not_json(account, data, record.stream, up.upstream_request_id)
            reader = partial(_usage_from_completion, parsed) if parsed is not None else None
            answer = JSONAnswer(
                up.status, data, _headers(up, record.request_id), up.upstream_request_id, reader
            )
            return Success(answer)
        error = _loads(data)
        error_type, message = codec.error_from_openai(up.status, error)
        # Relayed as sent when it is OpenAI's envelope; otherwise (a proxy's HTML page,
        # vLLM's flat {"object": "error", ...}) the client gets the envelope built from it.
        enveloped = isinstance(error, dict) and isinstance(error.get("error"), dict)
        return Failure(
            up.status,
            error_type,
            message,
            retry_after_s=retry_after_s(up.headers),
            body=data if enveloped else None,
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


def _usage_from_completion(completion: dict[str, Any], usage: Usage) -> None:
    usage_from_openai(completion.get("usage"), usage)


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
