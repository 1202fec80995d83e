"""The Anthropic Messages surface: ``/v1/messages``, ``/v1/messages/count_tokens``,
``/v1/models``, served under ``/`` and under ``/anthropic``.

Same-family calls are a passthrough: the body goes to the provider with only ``model``
replaced, and the provider's status, headers and body (or SSE bytes, chunk by chunk)
come back as sent. Wire references: ``anthropic/resources/messages/messages.py``,
``anthropic/resources/models.py``, ``anthropic/_streaming.py``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from ..core.usage import Usage
from ..errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    anthropic_error_body,
    anthropic_error_type,
)
from ..providers.base import Endpoint, ProviderRequest, ProviderResponse
from ..stores.usage import UsageRecord
from .anthropic_stream import AnthropicStreamTap
from .anthropic_translated import serve_translated
from .common import (
    body_size,
    finish_record,
    forward_headers,
    log_refused,
    new_request_id,
    read_json,
)
from .sse import encode_event

if TYPE_CHECKING:
    from ..app import Gateway
    from ..policy.admission import Admission

__all__ = ["AnthropicSurface", "new_request_id"]

PREFIXES = ("", "/anthropic")


def error_response(err: GatewayError, request_id: str) -> web.Response:
    """A gateway error in Anthropic's envelope, with ``request-id``."""
    headers = {"request-id": request_id, **err.headers}
    return web.Response(
        status=err.status,
        body=anthropic_error_body(err.error_type, err.message, request_id),
        content_type="application/json",
        headers=headers,
    )


class AnthropicSurface:
    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway
        self._max_body = int(gateway.settings.server.max_request_body_mb * 1024 * 1024)

    def add_routes(self, app: web.Application) -> None:
        for p in PREFIXES:
            app.router.add_post(f"{p}/v1/messages", self.messages)
            app.router.add_post(f"{p}/v1/messages/count_tokens", self.count_tokens)
            app.router.add_get(f"{p}/v1/models/{{model_id:.+}}", self.get_model)
        # Plain /v1/models is shared with the OpenAI surface; app.py dispatches it.
        app.router.add_get("/anthropic/v1/models", self.list_models)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self._call(request, "messages")

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        return await self._call(request, "count_tokens")

    async def _call(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        rid = new_request_id()
        started = time.perf_counter()
        try:
            caller = self._gw.keys.authenticate(request.headers)
        except GatewayError as err:
            log_refused(request, err.status, rid)
            return error_response(err, rid)
        # Every authenticated call gets a usage row, also the ones the gateway refuses itself.
        record = UsageRecord(
            ts=time.time(),
            request_id=rid,
            key_name=caller.name,
            model="",
            provider="",
            provider_model="",
            endpoint=endpoint,
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
                    f"model: {model!r} is not routed by this gateway (GET /v1/models lists them)"
                )
            stream = endpoint == "messages" and body.get("stream") is True
            record.provider = route.account
            record.provider_model = route.provider_model
            record.stream = stream
            if endpoint == "count_tokens":
                self._gw.policy.check_model(caller, model)
            else:
                admission = await self._gw.policy.admit(
                    caller, model, (route.provider_model,), body, await body_size(request)
                )
            if route.provider.wire != "anthropic":
                return await serve_translated(
                    self._gw, request, endpoint, body, route, record, usage, started
                )
            body["model"] = route.provider_model
            route.cap_body(body, "max_tokens")
            up = await route.provider.send(
                ProviderRequest(
                    endpoint, body, forward_headers(request.headers), request.query_string, stream
                )
            )
            record.upstream_request_id = up.upstream_request_id
            if stream and up.status == 200 and up.is_event_stream:
                return await self._relay_stream(request, up, record, usage, started)
            try:
                data = await up.read()
            finally:
                up.close()
            record.status = up.status
            if up.status == 200 and endpoint == "messages":
                _usage_from_json(data, usage)
            elif up.status >= 400:
                record.error_type = _error_type_from_json(data, up.status)
            return web.Response(status=up.status, body=data, headers=_relay_headers(up, rid))
        except GatewayError as err:
            record.status = err.status
            record.error_type = err.error_type
            return error_response(err, rid)
        finally:
            finish_record(self._gw, request, record, usage, started, admission)

    async def _relay_stream(
        self,
        request: web.Request,
        up: ProviderResponse,
        record: UsageRecord,
        usage: Usage,
        started: float,
    ) -> web.StreamResponse:
        """Relay SSE bytes as they arrive; the tap reads usage on the side."""
        tap = AnthropicStreamTap(usage)
        resp = web.StreamResponse(status=200, headers=_relay_headers(up, record.request_id))
        try:
            await resp.prepare(request)
            try:
                async for chunk in up.iter_chunks():
                    if record.ttft_s is None:
                        record.ttft_s = time.perf_counter() - started
                    # Bytes first, bookkeeping after: the tap's JSON parse of message_start
                    # must not hold the first event back.
                    await resp.write(chunk)
                    tap.feed(chunk)
            except GatewayError as err:
                # Headers are sent: end the stream the way Anthropic does, with an error event.
                tap.error_type = err.error_type
                error = {"type": "error", "error": {"type": err.error_type, "message": err.message}}
                await resp.write(encode_event("error", error))
            record.status = 200
            record.error_type = tap.error_type
            await resp.write_eof()
        except ConnectionResetError:
            record.status = 499
            record.error_type = "client_disconnected"
        finally:
            up.close()
        return resp

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models`` in Anthropic's page shape (``anthropic/types/model_info.py``)."""
        rid = new_request_id()
        try:
            caller = self._gw.keys.authenticate(request.headers)
            ids = [r.public_model for r in self._gw.routes]
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
        rid = new_request_id()
        try:
            caller = self._gw.keys.authenticate(request.headers)
            model_id = request.match_info["model_id"]
            if self._gw.routes.get(model_id) is None:
                raise NotFoundError(f"model: {model_id!r} is not routed by this gateway")
            self._gw.policy.check_model(caller, model_id)
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
            "created_at": self._gw.created_at,
        }


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


def _usage_from_json(data: bytes, usage: Usage) -> None:
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if isinstance(msg, dict) and isinstance(msg.get("usage"), dict):
        usage.update_from_anthropic(msg["usage"])


def _error_type_from_json(data: bytes, status: int) -> str:
    try:
        body = orjson.loads(data)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and isinstance(err.get("type"), str):
            return str(err["type"])
    except orjson.JSONDecodeError:
        pass
    return anthropic_error_type(status)


def utc_now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
