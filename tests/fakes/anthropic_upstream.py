"""A fake Anthropic API upstream for llmrelay's tests.

Runs an aiohttp server on 127.0.0.1 (free port) with its own event loop in a background
thread, so plain synchronous pytest tests can use it::

    with FakeAnthropic() as fake:
        fake.enqueue(fixture_reply("text_stream.sse"))
        ...point the gateway (or an SDK) at fake.url...
        assert fake.requests[0].json()["model"] == "..."

Wire shapes follow the official SDK (anthropics/anthropic-sdk-python):

* Message JSON: ``src/anthropic/types/message.py``, ``usage.py``.
* SSE stream: ``event:`` + ``data:`` lines, blank line after each event; event order
  message_start, content_block_start/delta/stop, message_delta (cumulative usage),
  message_stop, ``ping`` anywhere, ``error`` after a 200 (``src/anthropic/_streaming.py``,
  ``src/anthropic/lib/streaming/_messages.py``, ``tests/lib/streaming/fixtures/*.txt``).
* Error envelope ``{"type":"error","error":{"type","message"},"request_id"}``
  (``src/anthropic/types/shared/*error*.py``, docs "Errors").
* count_tokens: ``types/message_tokens_count.py``; models list: ``types/model_info.py``
  and ``pagination.py`` (``data``/``has_more``/``first_id``/``last_id``).
* Message Batches and Files: ``anthropic_batches.py``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import json
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.anthropic_batches import BatchesAndFiles

WIRE_DIR = Path(__file__).resolve().parent.parent / "wire" / "anthropic"
DEFAULT_MODEL = "claude-sonnet-4-6"
_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_STATUS_TO_ERROR = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8; a lone surrogate (legal in JSON, echoed from a request) goes out
    as its JSON escape, as the client sent it, instead of failing the reply."""
    return text.encode("utf-8", "backslashreplace")


@dataclass
class RecordedRequest:
    """One request as received by the fake (header names lower-cased; repeats joined by ", ")."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() when the request arrived

    def json(self) -> Any:
        return json.loads(self.body)

    def api_key(self) -> str | None:
        """The caller's key: ``x-api-key``, else the token of ``authorization: Bearer``."""
        return _api_key_of(self.headers)


def _api_key_of(headers: Mapping[str, str]) -> str | None:
    if "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass(frozen=True)
class Reply:
    """What the fake answers to one request. Build with the ``*_reply`` helpers."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a plain (JSON) body
    events: tuple[bytes, ...] | None = None  # SSE events, each written and flushed on its own
    delay_s: float = 0.0  # sleep between SSE events
    pre_delay_s: float = 0.0  # sleep before sending anything (see slow_reply)
    hang_after: bool = False  # after the last event keep the connection open
    hang: bool = False  # never answer at all
    drop_after: bool = False  # after the last event close the connection, the body unfinished


def error_body(status: int, message: str, request_id: str = "req_fake_error") -> dict[str, Any]:
    """An Anthropic error envelope for ``status`` (status -> type as in the errors doc)."""
    etype = _STATUS_TO_ERROR.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": etype, "message": message}, "request_id": request_id}


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON reply; ``body`` is serialised compactly (bytes/str are sent verbatim).

    If ``body`` carries a ``request_id`` it is also sent as the ``request-id`` header.
    """
    hdrs = {"content-type": "application/json"}
    if isinstance(body, dict) and isinstance(body.get("request_id"), str):
        hdrs["request-id"] = body["request_id"]
    hdrs.update(headers or {})
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else _dumps(body))
    data = _utf8(raw) if isinstance(raw, str) else raw
    return Reply(status=status, headers=hdrs, body=data)


def sse_events(text_or_events: str | list[tuple[str, Any]]) -> tuple[bytes, ...]:
    """Split SSE text on blank lines, or render ``(event_name, data)`` pairs, into wire events."""
    if isinstance(text_or_events, str):
        blocks = text_or_events.replace("\r\n", "\n").split("\n\n")
        return tuple(_utf8(b.strip("\n") + "\n\n") for b in blocks if b.strip())
    out = []
    for name, data in text_or_events:
        payload = data if isinstance(data, str) else _dumps(data)
        out.append(_utf8(f"event: {name}\ndata: {payload}\n\n"))
    return tuple(out)


def sse_reply(
    text_or_events: str | list[tuple[str, Any]],
    *,
    delay_s: float = 0.0,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    hang_after: bool = False,
) -> Reply:
    """A ``text/event-stream`` reply; each event is its own write, ``delay_s`` apart."""
    hdrs = {**_SSE_HEADERS, **(headers or {})}
    events = sse_events(text_or_events)
    return Reply(status=status, headers=hdrs, events=events, delay_s=delay_s, hang_after=hang_after)


def fixture_reply(name: str, **kw: Any) -> Reply:
    """Load ``tests/wire/anthropic/<name>``: ``.sse`` -> sse_reply, ``.json`` -> json_reply.

    ``error_NNN.json`` is served with status NNN. ``kw`` goes to the underlying helper.
    """
    path = WIRE_DIR / name
    text = path.read_text(encoding="utf-8")
    if name.endswith(".sse"):
        return sse_reply(text, **kw)
    if path.stem.startswith("error_") and path.stem[6:].isdigit():
        kw.setdefault("status", int(path.stem[6:]))
    return json_reply(json.loads(text), **kw)


def stream_error_reply(
    status: int = 529, message: str = "Overloaded", *, after: list[tuple[str, Any]] | None = None
) -> Reply:
    """A 200 stream whose first events are ``after`` (default none) and then an ``error``
    event, as Anthropic sends an ``overloaded_error`` after a 200 (``_streaming.py``)."""
    error = error_body(status, message)
    error.pop("request_id")
    return sse_reply([*(after or []), ("error", error)])


def message_start_event(
    msg_id: str = "msg_fake_preamble", model: str = DEFAULT_MODEL, input_tokens: int = 25
) -> tuple[str, Any]:
    """A ``message_start`` as Anthropic sends it: empty content, ``output_tokens: 1`` (the
    placeholder a stream's usage starts from), ``(event_name, data)`` for ``sse_reply``."""
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return ("message_start", {"type": "message_start", "message": message})


def preamble_error_reply(
    status: int = 529, message: str = "Overloaded", *, pings: int = 1, msg_id: str = "msg_failed"
) -> Reply:
    """A 200 stream that fails after its preamble, as Anthropic reports overload inside a
    stream (Bifrost #5395): ``message_start``, ``pings`` pings, then ``event: error``."""
    ping = ("ping", {"type": "ping"})
    return stream_error_reply(
        status, message, after=[message_start_event(msg_id), *([ping] * pings)]
    )


def deltas_reply(texts: list[str], *, hang_after: bool = True) -> Reply:
    """A 200 stream of one text block: ``message_start`` (output placeholder 1), the block's
    start, a ``text_delta`` per item of ``texts``; then (``hang_after``) nothing more, the
    connection held open, as a long answer the client may leave in the middle of."""
    events: list[tuple[str, Any]] = [
        message_start_event("msg_deltas"),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        *[
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": t}})
            for t in texts
        ],
    ]  # fmt: skip
    return sse_reply(events, hang_after=hang_after)


def hang_reply() -> Reply:
    """Accept the request and never answer (until the client gives up or the fake stops)."""
    return Reply(hang=True)


def slow_reply(delay_s: float, inner: Reply) -> Reply:
    """``inner``, but wait ``delay_s`` before sending the status line and headers."""
    return dataclasses.replace(inner, pre_delay_s=inner.pre_delay_s + delay_s)


def _last_user_text(body: Any) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    for msg in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                str(b.get("text", ""))
                for b in content
                if isinstance(b, dict) and b.get("type") == "text"
            )
    return ""


def count_tokens_for(raw_body: bytes) -> int:
    """The fake's deterministic token count for a request body: ``len(body) // 4 + 1``."""
    return len(raw_body) // 4 + 1


class FakeAnthropic:
    """A fake ``api.anthropic.com`` (see the module docstring). ``url`` has no ``/v1``."""

    def __init__(
        self, expected_api_key: str | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.url = ""
        #: Serve HTTPS with this context (``url`` is then ``https://localhost:<port>``).
        self.ssl_context = ssl_context
        #: When set to an unset Event, every stream waits after its first event until it is
        #: set: a test holds streams open for as long as it needs, without timing.
        self.gate: threading.Event | None = None
        self.requests: list[RecordedRequest] = []
        self.expected_api_key = expected_api_key
        self.default_stream_delay_s = 0.0
        self.latency_s = 0.0  # wait before answering any request (a slow provider)
        self.active_streams = 0
        self.max_concurrent_streams = 0
        self.disconnects = 0  # clients that went away before a reply finished
        self._messages_q: collections.deque[Reply] = collections.deque()
        self._count_q: collections.deque[Reply] = collections.deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._disconnected = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = False
        #: Message Batches and Files (``anthropic_batches.py``).
        self.batches = BatchesAndFiles()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        self.url = (
            f"http://127.0.0.1:{port}" if self.ssl_context is None else f"https://localhost:{port}"
        )
        self.batches.base_url = self.url

    async def _serve(self) -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.2,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        return int(self._runner.addresses[0][1])

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._stopping = True
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeAnthropic:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- test API ---------------------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        """Replies for ``POST /v1/messages`` (any query), consumed FIFO."""
        self._messages_q.extend(replies)

    def enqueue_count_tokens(self, *replies: Reply) -> None:
        """Replies for ``POST /v1/messages/count_tokens``, consumed FIFO."""
        self._count_q.extend(replies)

    def wait_for_disconnect(self, timeout: float) -> bool:
        """True once some client closed its connection before its reply finished."""
        return self._disconnected.wait(timeout)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear_replies(self) -> None:
        """Forget queued replies no request took; later requests get the defaults again."""
        self._messages_q.clear()
        self._count_q.clear()

    # -- server side ------------------------------------------------------------------------
    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):020d}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            name = k.lower()
            headers[name] = f"{headers[name]}, {v}" if name in headers else v
        self.requests.append(
            RecordedRequest(
                request.method, request.path, request.query_string, headers, body, time.monotonic()
            )
        )
        reply = self._route(request, headers, body)
        return await self._send(request, reply)

    def _route(self, request: web.Request, headers: dict[str, str], body: bytes) -> Reply:
        method, path = request.method, request.path
        if method == "HEAD" and path == "/":
            return Reply(headers={"content-type": "text/plain"}, body=b"")
        if self.expected_api_key is not None and _api_key_of(headers) != self.expected_api_key:
            return json_reply(error_body(401, "invalid x-api-key", self._next_id("req")), 401)
        if method == "POST" and path == "/v1/messages":
            return self._messages_q.popleft() if self._messages_q else self._default_message(body)
        if method == "POST" and path == "/v1/messages/count_tokens":
            if self._count_q:
                return self._count_q.popleft()
            return json_reply({"input_tokens": count_tokens_for(body)})
        if method == "GET" and path == "/v1/models":
            return json_reply(self._models_page())
        if self.batches.handles(path):
            ans = self.batches.route(method, path, headers.get("content-type", ""), body)
            return Reply(
                status=ans.status, headers={"content-type": ans.content_type}, body=ans.body
            )
        return json_reply(error_body(404, f"Not found: {method} {path}", self._next_id("req")), 404)

    def _models_page(self) -> dict[str, Any]:
        model = {
            "type": "model",
            "id": DEFAULT_MODEL,
            "display_name": "Claude Sonnet 4.6",
            "created_at": "2026-02-17T00:00:00Z",
            "lifecycle": "active",
        }
        return {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]}

    def _default_message(self, raw: bytes) -> Reply:
        """Deterministic echo: text is "echo: " + the last user message's text."""
        try:
            req = json.loads(raw)
        except ValueError:
            return json_reply(error_body(400, "invalid JSON body", self._next_id("req")), 400)
        if not isinstance(req, dict):
            req = {}
        text = "echo: " + _last_user_text(req)
        usage = {
            "input_tokens": count_tokens_for(raw),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": len(text) // 4 + 1,
            "service_tier": "standard",
        }
        msg: dict[str, Any] = {
            "id": self._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": req.get("model", DEFAULT_MODEL),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not req.get("stream"):
            return json_reply(msg)
        start = {**msg, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        step = max(1, -(-len(text) // 3))  # three-ish deltas
        deltas = [text[i : i + step] for i in range(0, len(text), step)]
        events: list[tuple[str, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("ping", {"type": "ping"}),
            *[
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": d}})
                for d in deltas
            ],
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": usage["output_tokens"]}}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        return sse_reply(events, delay_s=self.default_stream_delay_s)

    def _response_headers(self, reply: Reply) -> dict[str, str]:
        hdrs = {
            "request-id": self._next_id("req"),
            "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
            "anthropic-ratelimit-requests-limit": "4000",
            "anthropic-ratelimit-requests-remaining": "3999",
            "anthropic-ratelimit-tokens-limit": "2000000",
            "anthropic-ratelimit-tokens-remaining": "1999000",
        }
        hdrs.update(reply.headers)
        return hdrs

    def _mark_disconnect(self) -> None:
        if not self._stopping:
            with self._lock:
                self.disconnects += 1
            self._disconnected.set()

    async def _until_disconnect(self, request: web.Request) -> None:
        """Wait until the client goes away (recorded as a disconnect) or the fake stops."""
        while not self._stopping:
            transport = request.transport
            if transport is None or transport.is_closing():
                self._mark_disconnect()
                return
            await asyncio.sleep(0.02)

    async def _wait_gate(self, gate: threading.Event) -> None:
        # A threading.Event (the test's thread sets it): waited for in short slices in a
        # worker thread, so that a stopping fake does not wait for it.
        while not self._stopping and not await asyncio.to_thread(gate.wait, 0.05):
            pass

    async def _send(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        resp = web.StreamResponse(status=reply.status, headers=self._response_headers(reply))
        try:
            if reply.pre_delay_s or self.latency_s:
                await asyncio.sleep(reply.pre_delay_s + self.latency_s)
            if reply.hang:
                await self._until_disconnect(request)
                return web.Response(status=504)  # nobody is listening any more
            if reply.events is None:
                return web.Response(status=reply.status, headers=resp.headers, body=reply.body)
            await resp.prepare(request)
            with self._lock:
                self.active_streams += 1
                self.max_concurrent_streams = max(self.max_concurrent_streams, self.active_streams)
            try:
                for i, event in enumerate(reply.events):
                    if i == 1 and self.gate is not None:
                        await self._wait_gate(self.gate)
                    if i and reply.delay_s:
                        await asyncio.sleep(reply.delay_s)
                    await resp.write(event)
                if reply.hang_after:
                    await self._until_disconnect(request)
                elif reply.drop_after:
                    # A provider that went away mid-answer: no last chunk, no more bytes.
                    if request.transport is not None:
                        request.transport.close()
                else:
                    await resp.write_eof()
            finally:
                with self._lock:
                    self.active_streams -= 1
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client leaves
            self._mark_disconnect()
            raise
        except ConnectionError:  # a write hit the closed connection
            self._mark_disconnect()
        return resp
