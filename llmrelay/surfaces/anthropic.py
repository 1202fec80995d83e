"""The Anthropic Messages surface: ``/v1/messages``, ``/v1/messages/count_tokens``,
``/v1/models``, served under ``/`` and under ``/anthropic``.

A call runs through the call pipeline (``pipeline/run.py``); this module gives it
Anthropic's error envelope and the attempter. Same-family calls are a passthrough: the body
goes to the provider with only ``model`` replaced, and the provider's status, headers and
body (or SSE bytes, chunk by chunk) come back as sent. Other providers are reached through
translation (``anthropic_translated.py``). Wire references:
``anthropic/resources/messages/messages.py``, ``anthropic/resources/models.py``,
``anthropic/_streaming.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from ..core.text import clip
from ..core.types import Request
from ..core.usage import Usage
from ..errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    anthropic_error_body,
    anthropic_error_type,
)
from ..pipeline.answers import JSONAnswer
from ..pipeline.body import BodyLimits
from ..pipeline.call import Call, Parts, SurfaceName
from ..pipeline.run import guarded, new_request_id, run_call
from ..pipeline.surface import AttemptResult
from ..policy.auth import caller_credential
from ..providers.base import Endpoint, ProviderRequest, ProviderResponse
from ..providers.headers import HeaderFilter, client_headers
from ..routing.executor import Failure, Success, retry_after_s
from ..routing.table import Route
from ..translation import WireLimits
from .anthropic_stream import gated_stream, relay_answer
from .anthropic_translated import attempt_translated, decode_canonical
from .common import json_content, json_object, not_json

__all__ = ["AnthropicSurface", "error_response", "utc_now_rfc3339"]

PREFIXES = ("", "/anthropic")
#: ``/v1`` and, for an SDK whose ``base_url`` already ends in ``/v1`` (the Anthropic SDK
#: appends ``/v1/messages`` to it), ``/v1/v1``: served as ``/v1``.
VERSIONS = ("/v1", "/v1/v1")


def error_response(
    err: GatewayError, request_id: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A gateway error in Anthropic's envelope, with ``request-id``."""
    out = {**(headers or {}), "request-id": request_id, **err.headers}
    return web.Response(
        status=err.status,
        body=anthropic_error_body(err.error_type, err.message, request_id),
        content_type="application/json",
        headers=out,
    )


class AnthropicSurface:
    """Anthropic's API shape; ``created_at`` (RFC 3339) dates the model list."""

    name: SurfaceName = "anthropic"

    def __init__(
        self,
        parts: Parts,
        limits: BodyLimits,
        wire: WireLimits,
        headers: HeaderFilter,
        created_at: str,
    ) -> None:
        self._parts = parts
        self._limits = limits
        self._wire = wire
        self._headers = headers
        self._created_at = created_at

    def add_routes(self, app: web.Application) -> None:
        for p in PREFIXES:
            for v in VERSIONS:
                app.router.add_post(f"{p}{v}/messages", self.messages)
                app.router.add_post(f"{p}{v}/messages/count_tokens", self.count_tokens)
        # Plain /v1/models and /v1/models/{id} are shared with the OpenAI surface; app.py
        # dispatches them. Only Anthropic's SDK doubles the /v1.
        for path in ("/anthropic/v1", "/v1/v1", "/anthropic/v1/v1"):
            app.router.add_get(f"{path}/models", guarded(self.list_models, self))
            app.router.add_get(f"{path}/models/{{model_id:.+}}", guarded(self.get_model, self))

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await run_call(self._parts, self, self._limits, request, "messages")

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        return await run_call(self._parts, self, self._limits, request, "count_tokens")

    def error_response(
        self, err: GatewayError, request_id: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return error_response(err, request_id, headers)

    def unknown_model(self, model: str) -> str:
        return f"model: {model!r} is not routed by this gateway (GET /v1/models lists them)"

    def attempter(self, call: Call, endpoint: Endpoint, body: dict[str, Any]) -> _Attempter:
        return _Attempter(call, endpoint, body, self._wire, self._headers)

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models`` in Anthropic's page shape (``anthropic/types/model_info.py``)."""
        rid = new_request_id()
        try:
            caller = self._parts.keys.authenticate(request.headers)
            ids = [name for name, _ in self._parts.router.names()]
            if caller.models is not None:
                ids = [i for i in ids if i in caller.models]
            q = request.query
            limit = _int_param(q.get("limit"), "limit", 20, 1, 1000)
            if "after_id" in q:
                ids = ids[_index(ids, q["after_id"]) + 1 :]
            if "before_id" in q:
                ids = ids[: _index(ids, q["before_id"])][-limit:]
            page, has_more = ids[:limit], len(ids) > limit
            data = [self._model_info(i) for i in page]
            body = {
                "data": data,
                "has_more": has_more,
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            }
        except GatewayError as err:
            return error_response(err, rid)
        return web.Response(
            body=orjson.dumps(body), content_type="application/json", headers={"request-id": rid}
        )

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models/{id}`` as Anthropic's ``ModelInfo``
        (``anthropic/types/model_info.py``); 404 for a name the gateway does not route."""
        rid = new_request_id()
        try:
            caller = self._parts.keys.authenticate(request.headers)
            model_id = request.match_info["model_id"]
            if model_id not in self._parts.router:
                raise ModelNotFoundError(self.unknown_model(clip(model_id)))
            self._parts.policy.check_model(caller, model_id)
        except GatewayError as err:
            return error_response(err, rid)
        return web.Response(
            body=orjson.dumps(self._model_info(model_id)),
            content_type="application/json",
            headers={"request-id": rid},
        )

    def _model_info(self, model_id: str) -> dict[str, str]:
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id,
            "created_at": self._created_at,
        }


class _Attempter:
    """Tries one target for one Anthropic-surface call: a passthrough to an Anthropic-wire
    provider (Anthropic, Bedrock, Vertex, mock), a translation to any other."""

    __slots__ = ("_body", "_call", "_canonical", "_endpoint", "_headers", "_wire")

    def __init__(
        self,
        call: Call,
        endpoint: Endpoint,
        body: dict[str, Any],
        wire: WireLimits,
        headers: HeaderFilter,
    ) -> None:
        self._call = call
        self._endpoint = endpoint
        self._body = body
        self._wire = wire
        self._headers = client_headers(call.request.headers, headers)
        self._canonical: Request | None = None

    async def attempt(self, route: Route, gate: bool) -> AttemptResult:
        call = self._call
        rid = call.record.request_id
        if route.provider.wire != "anthropic":
            if self._canonical is None:
                self._canonical = decode_canonical(self._body)
            return await attempt_translated(
                call.parts.tokens,
                rid,
                self._endpoint,
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
        route.cap_body(body, "max_tokens")
        stream = call.record.stream
        up = await route.provider.send(
            ProviderRequest(
                self._endpoint,
                body,
                call.upstream_headers(self._headers),
                call.request.query_string,
                stream,
                caller_credential(call.request.headers, call.parts.keys),
            )
        )
        account = route.account
        if stream and up.status == 200 and up.is_event_stream:
            headers = _relay_headers(up, rid)
            limit = self._wire.max_event_bytes
            if gate:
                return await gated_stream(
                    up, headers, account, limit, self._wire.max_preamble_bytes
                )
            return Success(relay_answer(up, headers, account, limit))
        try:
            data = await up.read()
        finally:
            up.close()
        if up.status < 400:
            parsed = json_object(data) if up.status == 200 else None
            if up.status == 200 and (parsed is None or stream):
                return not_json(account, data, stream, up.upstream_request_id)
            reader = None
            if parsed is not None and self._endpoint == "messages":
                reader = partial(_usage_from_message, parsed)
            answer = JSONAnswer(
                up.status, data, _relay_headers(up, rid), up.upstream_request_id, reader
            )
            return Success(answer)
        error_type, message, enveloped = _error_from_json(data, up.status)
        return Failure(
            up.status,
            error_type,
            message,
            retry_after_s=retry_after_s(up.headers),
            # Relayed as sent when it is Anthropic's envelope; otherwise (a proxy's HTML
            # page, a bare string) the client gets the envelope built from it.
            body=data if enveloped else None,
            headers=up.headers,
            upstream_request_id=up.upstream_request_id,
        )

    def error_response(self, failure: Failure, headers: dict[str, str]) -> web.Response:
        rid = self._call.record.request_id
        out = {**failure.headers, "request-id": rid}
        if failure.upstream_request_id is not None:
            out["x-llmrelay-upstream-request-id"] = failure.upstream_request_id
        out.update(headers)
        body = failure.body
        if body is None:
            body = anthropic_error_body(failure.error_type, failure.message, rid)
            out = json_content(out)
        return web.Response(status=failure.status, body=body, headers=out)


def _relay_headers(up: ProviderResponse, request_id: str) -> dict[str, str]:
    headers = {**up.headers, "request-id": request_id}
    if up.upstream_request_id is not None:
        headers["x-llmrelay-upstream-request-id"] = up.upstream_request_id
    return headers


def _int_param(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequestError(f"{name}: expected an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise InvalidRequestError(f"{name}: must be between {lo} and {hi}")
    return value


def _index(ids: list[str], model_id: str) -> int:
    try:
        return ids.index(model_id)
    except ValueError:
        raise InvalidRequestError(f"no model with id {model_id!r}") from None


def _usage_from_message(msg: dict[str, Any], usage: Usage) -> None:
    """Usage of a whole Message body (left as it is when the body has none)."""
    if isinstance(msg.get("usage"), dict):
        usage.update_from_anthropic(msg["usage"])


def _error_from_json(data: bytes, status: int) -> tuple[str, str, bool]:
    """(error type, message, whether it is Anthropic's envelope) of an error body; the
    status decides the type when the body has none."""
    try:
        body = orjson.loads(data)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and isinstance(err.get("type"), str):
            enveloped = body.get("type") == "error" and isinstance(err.get("message"), str)
            return str(err["type"]), str(err.get("message") or ""), enveloped
    except orjson.JSONDecodeError:
        pass
    return anthropic_error_type(status), data[:500].decode("utf-8", "replace"), False


def utc_now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
