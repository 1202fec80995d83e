"""Spans to OTLP/HTTP protobuf, four times cheaper than the SDK's encoder.

The SDK's exporter builds a protobuf message object per span, attribute and value; on a
traced call (two spans, ~35 attributes) that is ~150 µs of CPU in the export thread, more
than the whole budget of tracing (``bench/tracing_micro.py``). :func:`encode_spans` writes
the same ``ExportTraceServiceRequest`` bytes directly (~35 µs), following
``opentelemetry/proto/collector/trace/v1/trace_service.proto`` and ``trace/v1/trace.proto``
of ``opentelemetry-proto`` (field numbers and wire types noted below); a test decodes its
output with ``opentelemetry-proto`` and compares it with the SDK's encoding.

:class:`OTLPSpanExporter` is the SDK's OTLP/HTTP exporter (endpoint, headers, timeout,
compression, TLS from its arguments and the ``OTEL_EXPORTER_OTLP_*`` variables; retries with
backoff within the timeout) with this encoder; on an SDK whose exporter internals differ it
falls back to the SDK's own encoding.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as _SDKExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = ["OTLPSpanExporter", "encode_spans"]

log = logging.getLogger("llmrelay")

_double = struct.Struct("<d").pack
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack

# Span.flags: the parent's is-remote bit is known (0x100), and set (0x200) when remote.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [_varint(i) for i in range(16384)]


def _ld(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field: ``tag``, the length as a varint, ``data``."""
    n = len(data)
    return tag + (_SMALL[n] if n < 16384 else _varint(n)) + data


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest``: ``resource_spans`` (1) grouped by resource, each
    with ``scope_spans`` (2) grouped by instrumentation scope."""
    groups: dict[int, tuple[Resource, dict[Any, list[bytes]]]] = {}
    for span in spans:
        resource = span.resource
        entry = groups.get(id(resource))
        if entry is None:
            entry = groups[id(resource)] = (resource, {})
        scope = span.instrumentation_scope
        entry[1].setdefault(scope, []).append(_span(span))
    out = []
    for resource, scopes in groups.values():
        body = [_ld(b"\x0a", _attributes(b"\x0a", resource.attributes))]  # resource (1)
        for scope, encoded in scopes.items():
            body.append(_ld(b"\x12", _scope_spans(scope, encoded)))  # scope_spans (2)
        if resource.schema_url:
            body.append(_ld(b"\x1a", resource.schema_url.encode()))  # schema_url (3)
        out.append(_ld(b"\x0a", b"".join(body)))  # resource_spans (1)
    return b"".join(out)


def _scope_spans(scope: InstrumentationScope | None, spans: list[bytes]) -> bytes:
    out = [b"\x0a\x00"]  # scope (1), empty
    if scope is not None:
        fields = [_ld(b"\x0a", scope.name.encode())]  # name (1)
        if scope.version:
            fields.append(_ld(b"\x12", scope.version.encode()))  # version (2)
        if scope.attributes:
            fields.append(_attributes(b"\x1a", scope.attributes))  # attributes (3)
        out[0] = _ld(b"\x0a", b"".join(fields))
    out.extend(_ld(b"\x12", s) for s in spans)  # spans (2)
    if scope is not None and scope.schema_url:
        out.append(_ld(b"\x1a", scope.schema_url.encode()))  # schema_url (3)
    return b"".join(out)


def _span(span: ReadableSpan) -> bytes:
    ctx = span.context
    assert ctx is not None
    out = [
        b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big"),  # trace_id (1)
        b"\x12\x08" + ctx.span_id.to_bytes(8, "big"),  # span_id (2)
    ]
    if ctx.trace_state:
        out.append(_ld(b"\x1a", ctx.trace_state.to_header().encode()))  # trace_state (3)
    parent = span.parent
    flags = _HAS_IS_REMOTE
    if parent is not None:
        out.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))  # parent_span_id (4)
        if parent.is_remote:
            flags |= _IS_REMOTE
    out.append(_ld(b"\x2a", span.name.encode()))  # name (5)
    out.append(b"\x30" + _SMALL[span.kind.value + 1])  # kind (6): the SDK's enum + 1
    out.append(b"\x39" + _fixed64(span.start_time or 0))  # start_time_unix_nano (7)
    out.append(b"\x41" + _fixed64(span.end_time or 0))  # end_time_unix_nano (8)
    if span.attributes:
        out.append(_attributes(b"\x4a", span.attributes))  # attributes (9)
    if span.dropped_attributes:
        out.append(b"\x50" + _varint(span.dropped_attributes))  # (10)
    for event in span.events:  # events (11)
        fields = [b"\x09" + _fixed64(event.timestamp), _ld(b"\x12", event.name.encode())]
        if event.attributes:
            fields.append(_attributes(b"\x1a", event.attributes))
        out.append(_ld(b"\x5a", b"".join(fields)))
    if span.dropped_events:
        out.append(b"\x60" + _varint(span.dropped_events))  # (12)
    for link in span.links:  # links (13)
        lc = link.context
        fields = [
            b"\x0a\x10" + lc.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + lc.span_id.to_bytes(8, "big"),
        ]
        if lc.trace_state:
            fields.append(_ld(b"\x1a", lc.trace_state.to_header().encode()))
        if link.attributes:
            fields.append(_attributes(b"\x22", link.attributes))
        fields.append(b"\x35" + _fixed32(_HAS_IS_REMOTE | (_IS_REMOTE if lc.is_remote else 0)))
        out.append(_ld(b"\x6a", b"".join(fields)))
    if span.dropped_links:
        out.append(b"\x70" + _varint(span.dropped_links))  # (14)
    status = span.status  # status (15): message (2), code (3)
    code = status.status_code.value
    message = _ld(b"\x12", status.description.encode()) if status.description else b""
    out.append(_ld(b"\x7a", message + (b"\x18" + _SMALL[code] if code else b"")))
    out.append(b"\x85\x01" + _fixed32(flags))  # flags (16)
    return b"".join(out)


_KEYS: dict[str, bytes] = {}


def _attributes(tag: bytes, attributes: Mapping[str, Any]) -> bytes:
    """``KeyValue`` fields under ``tag``: key (1), value (2). Encoded keys are kept (attribute
    names are few); short strings and small ints, most values, take a shorter path."""
    out = []
    keys = _KEYS
    small = _SMALL
    # The SDK's BoundedAttributes wraps a dict; its Mapping methods cost a third of the
    # encoding here, so the dict is read when it is there.
    plain = getattr(attributes, "_dict", None)
    items = plain.items() if isinstance(plain, dict) else attributes.items()
    for key, value in items:
        k = keys.get(key)
        if k is None:
            k = _ld(b"\x0a", key.encode())
            if len(keys) < 4096:
                keys[key] = k
        kind = type(value)
        if kind is str:
            v = value.encode("utf-8", "surrogatepass")
            n = len(v)
            if n < 126:  # value (2) = AnyValue{string_value (1)}, both lengths one byte
                body = k + b"\x12" + small[n + 2] + b"\x0a" + small[n] + v
            else:
                body = k + _ld(b"\x12", _ld(b"\x0a", v))
        elif kind is int and 0 <= value < 16384:
            v = small[value]
            body = k + b"\x12" + small[len(v) + 1] + b"\x18" + v
        else:
            body = k + _ld(b"\x12", _value(value))
        n = len(body)
        out.append(tag + (small[n] if n < 16384 else _varint(n)) + body)
    return b"".join(out)


def _value(value: Any) -> bytes:
    """An ``AnyValue``: string (1), bool (2), int (3, int64), double (4), array (5), kvlist
    (6), bytes (7)."""
    if isinstance(value, str):
        return _ld(b"\x0a", value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _ld(b"\x3a", value)
    if isinstance(value, Mapping):
        return _ld(b"\x32", _attributes(b"\x0a", value))
    if isinstance(value, Sequence):
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", _value(v)) for v in value))
    return _ld(b"\x0a", str(value).encode())


class OTLPSpanExporter(_SDKExporter):
    """The SDK's OTLP/HTTP span exporter with :func:`encode_spans` (see the module
    docstring); same arguments."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        client = getattr(self, "_client", None)
        if client is None or not hasattr(client, "export") or getattr(self, "_shutdown", True):
            return super().export(spans)
        try:
            data = encode_spans(spans)
        except Exception:
            log.exception("encoding trace spans failed")
            return SpanExportResult.FAILURE
        result = client.export(data)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
