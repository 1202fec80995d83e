"""An OTLP/HTTP trace receiver for tests: ``POST /v1/traces`` with an
``ExportTraceServiceRequest`` (protobuf, decoded with ``opentelemetry-proto``), on a free
port in a thread of its own::

    with OTLPReceiver() as otlp:
        ...point the gateway at otlp.endpoint...
        spans = otlp.wait_for(lambda spans: len(spans) >= 2)

``hang=True`` makes a collector that accepts every request and never answers (until it
stops). Spans are flattened into :class:`ReceivedSpan` (ids as hex, attributes as Python
values).
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
UNSET, OK, ERROR = 0, 1, 2  # Status.StatusCode


@dataclass
class ReceivedSpan:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    start_ns: int
    end_ns: int
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""


def value_of(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    return None if kind is None else getattr(v, kind)


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: value_of(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    ReceivedSpan(
                        name=s.name,
                        kind=s.kind,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        trace_state=s.trace_state,
                        attributes={kv.key: value_of(kv.value) for kv in s.attributes},
                        status_code=s.status.code,
                        status_message=s.status.message,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        resource=resource,
                        scope=ss.scope.name,
                    )
                )
    return out


class OTLPReceiver:
    """See the module docstring. ``requests`` counts export requests received (answered or
    not); ``headers`` are the last request's headers (names lower-cased)."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.headers: dict[str, str] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""
        self.base = ""

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # a kept-alive connection left idle ends its thread

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.requests += 1
                    receiver.headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.hang:
                    receiver._release.wait()
                    self.close_connection = True
                    return
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                spans = decode(body)
                with receiver._lock:
                    receiver.spans.extend(spans)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # server_close joins the connection threads, so every socket is closed by then.
        self._server.daemon_threads = False
        self._server.block_on_close = True
        port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{port}"
        self.endpoint = f"{self.base}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OTLPReceiver:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_for(
        self, done: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """The spans received so far, once ``done(spans)`` holds (AssertionError after
        ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans never arrived; got {spans}")
            time.sleep(0.05)

    def trace(self, trace_id: str, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """The spans of ``trace_id``, once there are ``count`` of them (server span first)."""
        spans = self.wait_for(
            lambda all_: sum(s.trace_id == trace_id for s in all_) >= count, timeout
        )
        mine = [s for s in spans if s.trace_id == trace_id]
        return sorted(mine, key=lambda s: (s.kind != SERVER, s.start_ns))
