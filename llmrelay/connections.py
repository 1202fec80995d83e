"""Client connections: aiohttp's server with the bounds a gateway in front of many clients
needs. :func:`llmrelay.server.serve` runs the app through :class:`GatewayRunner`, which
serves it through :class:`GatewayServer`; over aiohttp's own server it adds, from
``server:`` in the config (:class:`~llmrelay.config.ServerConfig`):

* **header timeout**: a request's line and headers must be complete within
  ``header_timeout_s``. On a new connection the clock starts when the connection opens (a
  connection that sends nothing is closed then too); on a kept-alive connection it starts
  at the first byte of the next request (the wait for that byte is the keep-alive
  timeout). When it runs out, a client that sent part of a request gets a 408 and the
  connection is closed. Requests pipelined behind one being handled are bounded by the
  keep-alive timeout instead.
* **connection limit**: beyond ``max_connections`` open connections, a new one gets a
  503 ``overloaded_error`` with ``connection: close`` once its request headers are in,
  and one warning a few seconds at most goes to the log. Connections beyond twice the
  limit are closed unanswered.
* **malformed requests**: an HTTP parser error is answered with a 400 in Anthropic's
  error envelope naming the kind of error only. aiohttp's own answer quotes the raw line
  (a header carrying a key with a stray ``\\r`` echoed the key) and logs a traceback;
  here the log gets one warning line (peer address and kind, rate-limited). A body whose
  framing or content-encoding breaks gets the same warning instead of aiohttp's traceback
  (aiohttp reads the rest of every body after the answer), and its answer says
  ``connection: close``.
* **closing** (a drain, :meth:`GatewayServer.close_connections`): answers say
  ``connection: close`` from then on, idle kept-alive connections close at once.

Written against aiohttp 3.14's ``RequestHandler`` (``web_protocol.py``): the subclass reads
its ``_messages``, ``_upgraded``, ``_request_in_progress`` and ``_request_handler``, sets
``_close`` (to close after the current answer), overrides ``finish_response`` and
``log_exception``, and the server takes over the app's ``Server._kwargs`` and walks its
``_connections`` (a drain); ``tests/test_server_bounds.py`` and ``tests/test_drain.py`` fail
if those change.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from aiohttp.web_server import Server

from .config import ServerConfig
from .errors import anthropic_error_body, anthropic_error_type
from .obs.log import Throttled

if TYPE_CHECKING:
    from aiohttp.http_parser import RawRequestMessage

__all__ = ["GatewayRunner", "GatewayServer"]

# The logger the server's lines always went to (docs/operations.md names it).
log = logging.getLogger("llmrelay.server")


def _raw_response(status: int, reason: str, error_type: str, message: str) -> bytes:
    body = anthropic_error_body(error_type, message, None)
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_HEADER_TIMEOUT = _raw_response(
    408, "Request Timeout", "timeout_error", "request headers did not arrive in time"
)
_OVERLOADED = anthropic_error_body(
    "overloaded_error", "this gateway has too many open connections; retry shortly", None
)

# Parser errors by kind. The messages are fixed: aiohttp's quote the raw bytes.
_PARSE_REASONS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "request line or header too long"),
    (BadHttpMethod, "invalid request method"),
    (BadStatusLine, "invalid request line"),
    (InvalidURLError, "invalid request target"),
    (InvalidHeader, "invalid header line"),
    (PayloadEncodingError, "invalid body framing"),
)


def _parse_error_reason(exc: BaseException | None) -> str:
    """A fixed description of an HTTP parser error; never any of the bytes received."""
    for kind, reason in _PARSE_REASONS:
        if isinstance(exc, kind):
            if kind is BadHttpMethod and str(getattr(exc, "message", "")).startswith(
                "Received HTTPS traffic"
            ):
                return "TLS sent to a plain HTTP port"
            return reason
    return "invalid header line"


class GatewayServer(Server):
    """aiohttp's low-level server with the limits of a :class:`ServerConfig`; its
    connections are :class:`_Handler`."""

    def __init__(self, base: Server, config: ServerConfig) -> None:
        # aiohttp's app builds its Server (request handler, factory, handler arguments);
        # this one takes them over and makes its own connection protocol.
        super().__init__(
            base.request_handler,
            request_factory=self._make_request,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **base._kwargs,
        )
        self._base_factory = base.request_factory
        self.config = config
        #: Connections being served, and connections being refused (answered 503).
        self.open = 0
        self.refusing = 0
        #: Set by :meth:`close_connections` (a drain past its grace period): every answer
        #: says ``connection: close`` and every connection closes after its answer.
        self.closing = False
        #: Set once closing and no connection is left.
        self.idle = asyncio.Event()
        self.parse_errors = Throttled(log, logging.WARNING)
        self.refusals = Throttled(log, logging.WARNING)
        self.header_timeouts = Throttled(log, logging.WARNING)

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)

    def _make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> BaseRequest:
        # Once closing, a request is answered with connection: close (its answer's
        # keep-alive defaults to the request's), so its client reconnects elsewhere.
        if self.closing:
            message = message._replace(should_close=True)
        return self._base_factory(message, payload, protocol, writer, task)

    def close_connections(self) -> None:
        """From now on every answer says ``connection: close``; idle kept-alive connections
        close now, busy ones after their answer. :attr:`idle` is set when none is left."""
        self.closing = True
        # Not aiohttp's pre_shutdown(): its close() cancels an idle connection's wait for
        # the next request, which ends the connection's task but leaves it open until the
        # final cleanup; and one whose next request is half-received would never see it.
        for handler in list(self._connections):
            if isinstance(handler, _Handler):
                handler.close_when_done()
        self.check_idle()

    def check_idle(self) -> None:
        if self.closing and self.open + self.refusing == 0:
            self.idle.set()

    async def refuse(self, request: BaseRequest) -> StreamResponse:
        """The request handler of a connection over ``max_connections``."""
        resp = web.Response(
            status=503,
            body=_OVERLOADED,
            content_type="application/json",
            headers={"retry-after": "1"},
        )
        resp.force_close()
        return resp


# Slot states of a connection.
_SERVED, _REFUSED, _DROPPED = 1, 2, 3


class _Handler(RequestHandler):
    """One client connection: aiohttp's, plus the header timeout, the connection limit and
    parser errors that never echo what was received.

    A request starts with the first byte received once the previous request's body is
    complete (or when the connection opens), whether or not the handler is still writing
    the previous answer. The header clock is a deadline checked by one timer that is moved,
    not re-created, for each request: a kept-alive connection schedules about one timer per
    ``header_timeout_s``, whatever its request rate.
    """

    __slots__ = (
        "_answered",
        "_body",
        "_gw",
        "_header_bytes",
        "_header_deadline",
        "_header_timer",
        "_parsed",
        "_slot",
    )

    def __init__(self, manager: GatewayServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gw = manager
        self._slot = 0
        self._header_deadline = 0.0
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = False
        #: The body of the last request whose headers were parsed (None before the first).
        self._body: StreamReader | None = None
        #: Requests whose headers were parsed, and requests answered: the connection is
        #: between two requests when they are equal and no byte of the next one came.
        self._parsed = 0
        self._answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gw = self._gw
        limit = gw.config.max_connections
        if gw.open < limit:
            gw.open += 1
            self._slot = _SERVED
        else:
            peer = transport.get_extra_info("peername")
            gw.refusals.log(
                "connection refused: server.max_connections reached",
                {"max_connections": limit, "peer": peer[0] if peer else None},
            )
            if gw.refusing >= limit:
                self._slot = _DROPPED
                transport.close()
                return
            gw.refusing += 1
            self._slot = _REFUSED
            self._request_handler = gw.refuse
        super().connection_made(transport)
        self._arm_header_timer(self._loop.time())

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._header_deadline = 0.0
        if self._slot == _SERVED:
            self._gw.open -= 1
        elif self._slot == _REFUSED:
            self._gw.refusing -= 1
        self._slot = 0
        super().connection_lost(exc)
        self._gw.check_idle()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline:
            self._header_bytes = True
        elif data and (self._body is None or self._body.is_eof()) and not self._upgraded:
            # The last request's body is complete: these bytes start the next request.
            self._arm_header_timer(self._loop.time())
            self._header_bytes = True
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) != queued:  # a request line and headers are complete
            self._parsed += len(self._messages) - queued
            self._body = self._messages[-1][1]
            self._header_deadline = 0.0

    def close_when_done(self) -> None:
        """Close now if between two requests (every request parsed is answered, no byte of
        the next one came), else after the answer to the request being handled or begun.
        Counted here, not from aiohttp's ``_request_in_progress``: between parsing a request
        and starting its handler that flag is still False, and closing then failed the
        handler's body read (500 "Connection closed").

        Not aiohttp's ``close()``: its flag makes ``data_received`` drop every byte from
        then on, so the rest of a request whose headers (or part of them) are in, its body
        included, was never read: the call hung until the drain cut it (499 with no model)
        or failed reading its body (500 "Connection closed"). Reading goes on instead; the
        answer says ``connection: close`` (:meth:`finish_response` while
        ``GatewayServer.closing``), after which aiohttp closes the connection."""
        begun = self._header_deadline and self._header_bytes
        if self._parsed == self._answered and not begun:
            self.force_close()

    def _arm_header_timer(self, now: float) -> None:
        self._header_deadline = deadline = now + self._gw.config.header_timeout_s
        self._header_bytes = False
        if self._header_timer is None:
            self._header_timer = self._loop.call_at(deadline, self._header_timer_fired)

    def _header_timer_fired(self) -> None:
        self._header_timer = None
        deadline = self._header_deadline
        if not deadline or self.transport is None:
            return
        if self._loop.time() < deadline:  # armed again since: wait for the new deadline
            self._header_timer = self._loop.call_at(deadline, self._header_timer_fired)
            return
        self._header_deadline = 0.0
        if self._header_bytes:
            self._gw.header_timeouts.log(
                "request headers timed out",
                {"header_timeout_s": self._gw.config.header_timeout_s, "peer": _peer(self)},
            )
            self.transport.write(_HEADER_TIMEOUT)
        self.force_close()

    async def finish_response(
        self, request: BaseRequest, resp: StreamResponse, start_time: float | None
    ) -> tuple[StreamResponse, bool]:
        # A body whose framing or content-encoding broke leaves no way to find where the next
        # request starts: aiohttp closes the connection after the answer, which must then
        # say so (a route that never read the body answered keep-alive, and a client reusing
        # the connection got a reset).
        if isinstance(resp, web.HTTPException) and resp.status >= 400:
            resp = _enveloped(resp)
        if request.content.exception() is not None or self._gw.closing:
            resp.force_close()
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._answered += 1
            if self._gw.closing and resp.keep_alive:
                # Closing began while this answer (a keep-alive one) was written: close
                # after it, between two requests.
                self._close = True

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # After an answer, aiohttp reads what is left of the request body; a body whose
        # framing or content-encoding is broken raises there, and aiohttp logged it as an
        # "Unhandled exception" with a traceback, once per request a client cares to send.
        # It is the client's error (already answered, if the handler read the body, with a
        # 400): one throttled warning, like the parser's.
        if isinstance(kw.get("exc_info"), RequestPayloadError):
            self._gw.parse_errors.log(
                "malformed HTTP request", {"reason": "invalid body framing", "peer": _peer(self)}
            )
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # A malformed request: aiohttp's message and traceback quote the raw line, which
        # may carry a key (a header value with a stray CR). Say what kind of error it was.
        reason = _parse_error_reason(exc)
        self._gw.parse_errors.log(
            "malformed HTTP request", {"reason": reason, "peer": request.remote}
        )
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot answer a parser error")
        body = anthropic_error_body(
            "invalid_request_error", f"malformed HTTP request: {reason}", None
        )
        resp = web.Response(status=400, body=body, content_type="application/json")
        resp.force_close()
        return resp


def _enveloped(exc: web.HTTPException) -> web.Response:
    """aiohttp's own plain-text error answer in Anthropic's envelope, as the parser's errors
    are: a request target no route can match (``OPTIONS *``, ``CONNECT host:443``, an
    absolute URL without a path) is a 404 before any route runs. The message is the status
    phrase only."""
    body = anthropic_error_body(anthropic_error_type(exc.status), exc.reason, None)
    resp = web.Response(status=exc.status, body=body, content_type="application/json")
    for name in ("allow", "retry-after"):
        if name in exc.headers:
            resp.headers[name] = exc.headers[name]
    return resp


def _peer(handler: RequestHandler) -> str | None:
    peer = handler.transport.get_extra_info("peername") if handler.transport else None
    return str(peer[0]) if peer else None


class GatewayRunner(web.AppRunner):
    """aiohttp's ``AppRunner`` serving through :class:`GatewayServer`."""

    __slots__ = ("_config",)

    def __init__(self, app: web.Application, config: ServerConfig, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._config = config

    async def _make_server(self) -> Server:
        return GatewayServer(await super()._make_server(), self._config)
