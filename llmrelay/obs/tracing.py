"""OpenTelemetry traces: a SERVER span per call and a CLIENT span per provider attempt.

Attribute names follow the OpenTelemetry semantic conventions **v1.41.0**, the last release
that carries the GenAI conventions (they have since moved to
``open-telemetry/semantic-conventions-genai``, unreleased): ``docs/gen-ai/gen-ai-spans.md``
(``gen_ai.provider.name``, which replaced ``gen_ai.system``; ``gen_ai.usage.*`` with
``input_tokens`` counting cached tokens too), ``docs/http/http-spans.md``,
``docs/registry/attributes/error.md``. ``docs/observability.md`` lists every
attribute and says where it comes from.

- The server span, ``{method} {path}`` (``POST /v1/messages``), starts when the call
  arrives, continuing a W3C ``traceparent``/``tracestate`` the client sent, and ends with
  the call; its status is an error for a 5xx or a stream that broke.
- Each attempt (retries and fallbacks are siblings) is a child client span
  ``{gen_ai.operation.name} {provider model}``. A failed attempt ends with an error status;
  the one that answered ends with the call (its answer is relayed until then) and carries
  the usage. The provider request carries the attempt's ``traceparent`` unless the
  provider's ``trace_propagation`` is false.
- Sampling is the SDK's parent-based sampler around ``sample_ratio``: a client's sampled
  (or unsampled) ``traceparent`` decides; an unsampled call records nothing, and its
  upstream request carries the server span's ids with the sampled flag off.
- Spans go to the SDK's :class:`BatchSpanProcessor` (bounded queue, its own export thread;
  the exporter's ``export_timeout_s`` bounds an export with its retries), so a slow or dead
  collector never holds a call: when the queue is full spans are dropped and counted
  (``llmrelay_spans_dropped_total``).

Why not the SDK's tracer: its spans cost ~15 µs each to start plus ~1 µs per attribute (a
lock, validation of every value), which with its encoder took most of the 0.15 ms a traced
call may cost. A call's spans are plain records here (:class:`~.trace_spans.Open`: ids,
start time, an attribute dict the gateway fills with values of known types) made into the
SDK's ``ReadableSpan`` when they end, and handed to its batch processor and OTLP exporter
(with a faster encoder, ``otlp.py``); ids come from its ``RandomIdGenerator``, the
decision from its sampler. ``bench/tracing_micro.py`` measures a traced call (~60 µs of CPU
with the export).

Nothing of this module is imported or run when tracing is off (``app.py``).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections import deque
from collections.abc import Mapping
from time import time_ns
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, TraceFlags, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .. import __version__
from ..config import ConfigError, ProviderConfig, Settings, TracingConfig
from ..pipeline.call import Call, Capture
from ..providers.registry import gen_ai_provider_name
from .trace_answer import AnswerReader
from .trace_spans import Account, CallTrace, Open, operation_name

__all__ = ["Tracing"]

log = logging.getLogger("llmrelay")

_ROOT = Context()


class Tracing:
    """The call observer that traces every call (``call_started`` attaches a
    :class:`~.trace_spans.CallTrace` to the call, ``call_ended`` ends it), and the span
    pipeline behind it. Built from the settings and the process environment ``env`` (the
    standard ``OTEL_*`` variables fill what ``observability.tracing`` leaves unset).

    Raises:
        ConfigError: ``protocol: grpc`` without the gRPC exporter installed.
    """

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        config = settings.observability.tracing
        self.config = config
        self._batches = _Batches(_exporter(config, env), config.max_queue_size)
        self._sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        self._ids = RandomIdGenerator()
        #: A span id: 64 random bits, never 0.
        self.span_id = self._ids.generate_span_id
        self._resource = _resource(config, env)
        self._scope = InstrumentationScope("llmrelay", __version__)
        self._extract = TraceContextTextMapPropagator().extract
        #: Per provider account: the attributes of its attempt spans, and whether its
        #: requests carry the attempt's ``traceparent``.
        self.accounts = {a: _account(a, c) for a, c in settings.providers.items()}
        self.virtual = frozenset(settings.models)
        #: Content attributes' size limit in bytes (0: content is never captured).
        self.content_limit = config.max_content_kb * 1024 if config.capture_content else 0

    # -- CallObserver -----------------------------------------------------------------------
    def call_started(self, call: Call) -> None:
        request = call.request
        headers = request.headers
        name = f"{request.method} {request.path}"
        parent: SpanContext | None = None
        context = _ROOT
        if "traceparent" in headers:
            context = self._extract(headers)
            parent = get_current_span(context).get_span_context()
            if not parent.is_valid:
                parent = None
        if parent is None:
            trace_id = self._ids.generate_trace_id()
            flags = TraceFlags.RANDOM_TRACE_ID
        else:
            trace_id = parent.trace_id
            flags = parent.trace_flags & TraceFlags.RANDOM_TRACE_ID
        sampled = self._sampler.should_sample(context, trace_id, name, SpanKind.SERVER)
        if sampled.decision is Decision.RECORD_AND_SAMPLE:
            flags |= TraceFlags.SAMPLED
            attributes: dict[str, Any] = {
                "http.request.method": request.method,
                "url.path": request.path,
                "gen_ai.operation.name": operation_name(call.record.endpoint),
                "llmrelay.request_id": call.record.request_id,
            }
        else:
            attributes = {}
        server = Open(name, self.span_id(), time_ns(), attributes)
        call.trace = CallTrace(self, call, server, trace_id, flags, sampled.trace_state, parent)

    def call_ended(self, call: Call) -> None:
        trace = call.trace
        if isinstance(trace, CallTrace):
            trace.end(call)

    def export(
        self,
        trace: CallTrace,
        span: Open,
        kind: SpanKind,
        parent: SpanContext | None,
        status: Status,
    ) -> None:
        """End ``span`` of ``trace`` now: hand it to the export queue."""
        context = SpanContext(
            trace.trace_id,
            span.span_id,
            is_remote=False,
            trace_flags=TraceFlags(trace.flags),
            trace_state=trace.trace_state,
        )
        self._batches.on_end(
            ReadableSpan(
                span.name,
                context=context,
                parent=parent,
                resource=self._resource,
                attributes=span.attributes,
                kind=kind,
                status=status,
                start_time=span.start,
                end_time=time_ns(),
                instrumentation_scope=self._scope,
            )
        )

    # -- the gateway's hooks ----------------------------------------------------------------
    def capture(self, call: Call, inner: Capture | None) -> Capture | None:
        """The capture for an authenticated call: ``inner`` (the request log's) wrapped in an
        :class:`AnswerReader` when the call is sampled, so its answer's id, model and finish
        reasons (and, with ``capture_content``, the answer) reach the spans."""
        trace = call.trace
        if not isinstance(trace, CallTrace) or not trace.recording:
            return inner
        keep = max(256 * 1024, 8 * self.content_limit) if self.content_limit else 0
        reader = AnswerReader(inner, call.surface, keep)
        trace.answer = reader
        return reader

    def spans_dropped(self) -> int:
        """Spans dropped so far because the export queue was full."""
        return self._batches.dropped

    async def aclose(self) -> None:
        """Export what is queued and stop, waiting at most ``export_timeout_s``: the SDK's
        shutdown runs in a thread of its own, so a collector that hangs cannot hold the
        gateway's stop (what is left is lost, and logged)."""
        done = threading.Event()

        def shutdown() -> None:
            try:
                self._batches.stop()
            finally:
                done.set()

        threading.Thread(target=shutdown, name="llmrelay-trace-stop", daemon=True).start()
        if not await asyncio.to_thread(done.wait, self.config.export_timeout_s):
            log.warning("trace export did not finish at stop; queued spans are lost")
        if self._batches.dropped:
            log.warning("trace spans dropped", extra={"dropped": self._batches.dropped})


class _Batches(BatchSpanProcessor):
    """The SDK's batch processor, counting the spans it drops because its queue is full
    (the SDK only logs them). Its queue is a private ``deque(maxlen=max_queue_size)``;
    ``tests/obs/test_tracing.py`` checks the count, so an SDK that changes it shows."""

    def __init__(self, exporter: SpanExporter, max_queue_size: int) -> None:
        super().__init__(
            exporter, max_queue_size=max_queue_size, max_export_batch_size=min(512, max_queue_size)
        )
        self.dropped = 0
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        self._queue: deque[ReadableSpan] | None = None
        if isinstance(queue, deque) and queue.maxlen:
            self._queue = queue
        else:
            log.warning("this opentelemetry-sdk hides its span queue: drops are not counted")

    def stop(self) -> None:
        """Export what is queued (each export bounded by the exporter's timeout) and stop."""
        self.shutdown()  # type: ignore[no-untyped-call]

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue
        if queue is not None and len(queue) == queue.maxlen:
            self.dropped += 1
        super().on_end(span)


_GRPC_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"


def _protocol(config: TracingConfig, env: Mapping[str, str]) -> str:
    """``protocol`` when the config writes it, else ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or
    ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/json`` is not supported: http/protobuf then)."""
    if "protocol" in config.model_fields_set:
        return config.protocol
    wanted = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    wanted = (wanted or config.protocol).strip().lower()
    if wanted not in ("grpc", "http/protobuf"):
        log.warning("OTLP protocol not supported; using http/protobuf", extra={"protocol": wanted})
        return "http/protobuf"
    return wanted


def _exporter(config: TracingConfig, env: Mapping[str, str]) -> SpanExporter:
    headers = dict(config.headers) or None
    if _protocol(config, env) == "grpc":
        try:
            module = importlib.import_module(_GRPC_EXPORTER)
        except ImportError:
            raise ConfigError(
                "observability.tracing.protocol: grpc (or OTEL_EXPORTER_OTLP_PROTOCOL=grpc) "
                "needs the gRPC exporter: pip install 'llmrelay[tracing-grpc]', "
                "or use http/protobuf"
            ) from None
        exporter: SpanExporter = module.OTLPSpanExporter(
            endpoint=config.endpoint, headers=headers, timeout=config.export_timeout_s
        )
        return exporter
    from .otlp import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=config.endpoint, headers=headers, timeout=config.export_timeout_s
    )


def _resource(config: TracingConfig, env: Mapping[str, str]) -> Resource:
    """``service.name`` from the config when it is written there, else ``OTEL_SERVICE_NAME``,
    else ``llmrelay``; ``OTEL_RESOURCE_ATTRIBUTES`` are merged in by the SDK."""
    name = config.service_name
    if "service_name" not in config.model_fields_set:
        name = env.get("OTEL_SERVICE_NAME") or name
    return Resource.create({"service.name": name, "service.version": __version__})


def _account(account: str, cfg: ProviderConfig) -> Account:
    gen_ai = gen_ai_provider_name(cfg.type)
    attributes: dict[str, Any] = {"gen_ai.provider.name": gen_ai, "llmrelay.provider": account}
    url = getattr(cfg, "base_url", None) or getattr(cfg, "endpoint", None)
    url = url or getattr(cfg, "endpoint_url", None)
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return Account(attributes, gen_ai, bool(getattr(cfg, "trace_propagation", False)))
