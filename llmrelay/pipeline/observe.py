"""The observers every call ends with: the usage row (the bill) and the access log line.

Each sees a call once, after its row is complete (status, tokens, cost, latency); none
may raise into the call (``run.py`` catches and logs what one raises).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..core.text import clip
from ..stores.usage import UsageRecord
from .call import Call

__all__ = ["AccessLog", "UsageObserver", "trace_id"]

access = logging.getLogger("llmrelay.access")

_HEX = "0123456789abcdef"


class UsageObserver:
    """Queues the row of every authenticated call (refused ones included) for the usage
    writer; ``record`` must not block (``UsageRecorder.record``)."""

    __slots__ = ("_record",)

    def __init__(self, record: Callable[[UsageRecord], None]) -> None:
        self._record = record

    def call_started(self, call: Call) -> None:
        """Nothing to do until the row is complete."""

    def call_ended(self, call: Call) -> None:
        if call.caller is not None:
            self._record(call.record)


class AccessLog:
    """One ``request`` line per call at info level (nothing when info is off)."""

    __slots__ = ()

    def call_started(self, call: Call) -> None:
        """The line is written at the end."""

    def call_ended(self, call: Call) -> None:
        if not access.isEnabledFor(logging.INFO):
            return
        record = call.record
        request = call.request
        if call.caller is None:
            access.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": record.status,
                    "request_id": record.request_id,
                },
            )
            return
        access.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": record.status,
                "request_id": record.request_id,
                "trace_id": record.trace_id,
                "key_name": record.key_name,
                "team": record.team,
                "model": clip(record.model),
                "target": call.routed or None,
                "provider": record.provider,
                "provider_model": record.provider_model,
                "attempts": record.attempts,
                "stream": record.stream,
                "latency_ms": round(record.latency_s * 1000, 2),
                "ttft_ms": None if record.ttft_s is None else round(record.ttft_s * 1000, 2),
                "overhead_ms": round(call.overhead_s() * 1000, 3),
                "upstream_ms": round(call.provider_s * 1000, 2),
                "input_tokens": record.input_tokens,
                "output_tokens": record.output_tokens,
                "cache_read_input_tokens": record.cache_read_input_tokens,
                "cache_creation_input_tokens": record.cache_creation_input_tokens,
                "cost_usd": record.cost_usd,
                "error_type": record.error_type,
                "upstream_request_id": record.upstream_request_id,
            },
        )


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``), or None
    when there is none or it is malformed."""
    if traceparent is None or len(traceparent) < 55:
        return None
    tid = traceparent[3:35].lower()
    if traceparent[2] != "-" or traceparent[35] != "-" or tid.strip(_HEX) or tid == "0" * 32:
        return None
    return tid
