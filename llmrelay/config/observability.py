"""Observability settings: Prometheus metrics, OpenTelemetry traces, the request log.

Reference: ``docs/observability.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ._base import ConfigModel as _Model

__all__ = [
    "BodyCapture",
    "MetricsConfig",
    "ObservabilityConfig",
    "RequestLogConfig",
    "TracingConfig",
]

#: Which calls keep their request and response bodies in the request log.
BodyCapture = Literal["none", "errors", "all"]
#: Labels on the per-call series that name the caller.
CallerLabel = Literal["key", "team"]


def _both() -> list[CallerLabel]:
    return ["key", "team"]


class MetricsConfig(_Model):
    """``GET /metrics`` in Prometheus' text format, on the gateway's port."""

    enabled: bool = True
    #: When set, a scrape must send ``Authorization: Bearer <key>``.
    key: str | None = Field(default=None, min_length=8)
    #: Per-caller labels on the per-call series; drop ``key`` (or both) for fewer series.
    labels: list[CallerLabel] = Field(default_factory=_both)
    #: Distinct values a ``key`` or ``team`` label takes at most; later ones count as
    #: ``other``, so thousands of keys cannot make thousands of series per metric.
    max_label_values: int = Field(default=200, ge=1, le=100_000)


class TracingConfig(_Model):
    """OpenTelemetry traces over OTLP (``docs/observability.md``); off unless
    ``enabled`` or an endpoint is set, here or in the standard environment variables (see
    :meth:`active`)."""

    enabled: bool = False
    #: OTLP endpoint: for ``http/protobuf`` the full traces URL
    #: (``http://collector:4318/v1/traces``), for ``grpc`` ``host:port``. Unset: the
    #: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` variables,
    #: else ``http://localhost:4318/v1/traces``.
    endpoint: str | None = None
    #: ``grpc`` needs the ``tracing-grpc`` extra (``pip install 'llmrelay[tracing-grpc]'``).
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    #: Extra headers on every export (a collector's API key); they win over
    #: ``OTEL_EXPORTER_OTLP_HEADERS``.
    headers: dict[str, str] = Field(default_factory=dict)
    #: Share of calls traced (parent-based: a caller's sampled ``traceparent`` is kept).
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    #: ``service.name`` of the spans; unset here, ``OTEL_SERVICE_NAME`` applies.
    service_name: str = Field(default="llmrelay", min_length=1)
    #: Put prompts and answers on spans (off: never).
    capture_content: bool = False
    #: With ``capture_content``: each content attribute is cut to this many KiB of JSON.
    max_content_kb: int = Field(default=16, ge=1, le=1024)
    #: Spans waiting for export at most; more are dropped and counted.
    max_queue_size: int = Field(default=2048, ge=1)
    #: Seconds one export may take (retries included), and the bound on the flush at stop.
    export_timeout_s: float = Field(default=5.0, gt=0)

    def active(self, env: Mapping[str, str]) -> bool:
        """Whether tracing runs, given the process environment ``env``: ``enabled`` when it
        is written out; else whether an ``endpoint`` is set, here or as
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` in ``env``.
        ``OTEL_SDK_DISABLED=true`` turns it off whatever the file says."""
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
        if "enabled" in self.model_fields_set:
            return self.enabled
        if self.endpoint is not None:
            return True
        return bool(env.get(_TRACES_ENDPOINT) or env.get(_ENDPOINT))

    def destination(self, env: Mapping[str, str]) -> str:
        """Where spans go, as the OTLP exporters resolve it: ``endpoint``; else
        ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; else ``OTEL_EXPORTER_OTLP_ENDPOINT`` (with
        ``/v1/traces`` appended for ``http/protobuf``); else the protocol's default."""
        grpc = self.protocol == "grpc"
        if self.endpoint:
            return self.endpoint
        if env.get(_TRACES_ENDPOINT):
            return env[_TRACES_ENDPOINT]
        base = env.get(_ENDPOINT)
        if base:
            return base if grpc else base.rstrip("/") + "/v1/traces"
        return "http://localhost:4317" if grpc else "http://localhost:4318/v1/traces"


_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"not a valid regular expression: {err}") from None
    return pattern


class RequestLogConfig(_Model):
    """What the request log keeps beyond each call's usage row (``/admin/requests``)."""

    #: Whose bodies to keep: ``errors`` keeps only calls that did not end in a 200.
    bodies: BodyCapture = "none"
    #: Overrides of ``bodies`` by key name and by team (a key's wins over its team's).
    bodies_by_key: dict[str, BodyCapture] = Field(default_factory=dict)
    bodies_by_team: dict[str, BodyCapture] = Field(default_factory=dict)
    #: Each stored body is cut to this many KiB (and marked as cut).
    max_body_kb: int = Field(default=64, ge=1, le=16 * 1024)
    #: Regular expressions whose matches are replaced by ``[REDACTED]`` before a body is
    #: stored, in addition to the shipped ones for API-key shapes.
    redact: list[Annotated[str, AfterValidator(_regex)]] = Field(default_factory=list)
    #: Captured bodies older than this many days are deleted by a background task (hourly);
    #: usage rows, the bill, and the request details on them stay.
    retention_days: float = Field(default=30, gt=0)


class ObservabilityConfig(_Model):
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()
    request_log: RequestLogConfig = RequestLogConfig()
