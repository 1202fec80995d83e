"""The offline ``mock`` provider: answers in-process with the Anthropic wire, no network."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ...config import MockProviderConfig
from ...core.sse import encode_event
from ...errors import anthropic_error_body, anthropic_error_type
from ..base import ProviderRequest, Wire
from .codec import RequestError, count_tokens, message_events, reply_message

__all__ = ["MockProvider"]

_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


class MockResponse:
    """A :class:`~llmrelay.providers.base.ProviderResponse` held in memory."""

    __slots__ = ("_body", "_delay_s", "_events", "headers", "status", "upstream_request_id")

    status: int
    headers: Mapping[str, str]
    upstream_request_id: str | None

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes = b"",
        events: list[dict[str, Any]] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.status = status
        self.headers = headers
        self.upstream_request_id = None
        self._body = body
        self._events = events
        self._delay_s = delay_s

    @property
    def is_event_stream(self) -> bool:
        return self._events is not None

    async def read(self) -> bytes:
        if self._events is not None:
            return b"".join(encode_event(e["type"], e) for e in self._events)
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._events is None:
            yield self._body
            return
        for i, event in enumerate(self._events):
            if i and self._delay_s:
                await asyncio.sleep(self._delay_s)
            yield encode_event(event["type"], event)

    def close(self) -> None:
        self._events = None


def _error_response(status: int, error_type: str, message: str) -> MockResponse:
    """An error in Anthropic's envelope, with a ``request_id`` of its own as Anthropic's
    errors have (also in ``request-id``, which the gateway reports as the upstream's)."""
    rid = f"req_mock{random.getrandbits(64):016x}"
    headers = {**_JSON, "request-id": rid}
    resp = MockResponse(status, headers, anthropic_error_body(error_type, message, rid))
    resp.upstream_request_id = rid
    return resp


def _error(message: str) -> MockResponse:
    return _error_response(400, "invalid_request_error", message)


class MockProvider:
    """Deterministic answers from :mod:`llmrelay.providers.mock.codec`."""

    def __init__(self, account: str, config: MockProviderConfig) -> None:
        self.account = account
        self.wire: Wire = "anthropic"
        self._delay_s = config.stream_delay_s
        self._error_status = config.error_status
        self._error_in_stream = config.error_in_stream

    def _failure(self, stream: bool) -> MockResponse:
        status = self._error_status or 500
        error_type = anthropic_error_type(status)
        message = f"mock provider {self.account!r} is set to fail (error_status: {status})"
        if stream and self._error_in_stream:
            event = {"type": "error", "error": {"type": error_type, "message": message}}
            return MockResponse(200, _SSE, events=[event])
        return _error_response(status, error_type, message)

    async def send(self, request: ProviderRequest) -> MockResponse:
        if self._error_status is not None and request.endpoint == "messages":
            return self._failure(request.stream)
        if request.endpoint == "count_tokens":
            if not isinstance(request.body.get("messages"), list):
                return _error("messages: field required (a list)")
            return MockResponse(
                200, _JSON, orjson.dumps({"input_tokens": count_tokens(request.body)})
            )
        try:
            message = reply_message(request.body)
        except RequestError as err:
            return _error(str(err))
        if request.stream:
            return MockResponse(200, _SSE, events=message_events(message), delay_s=self._delay_s)
        return MockResponse(200, _JSON, orjson.dumps(message))

    async def start(self) -> None:
        """Nothing to prepare."""

    async def aclose(self) -> None:
        """Nothing to release."""
