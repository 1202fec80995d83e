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

__all__ = ["AccessLog", "UsageObserver"]

access = logging.getLogger("llmrelay.access")


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
                "key_name": record.key_name,
                "model": clip(record.model),
                "provider": record.provider,
                "provider_model": record.provider_model,
                "attempts": record.attempts,
                "request_id": record.request_id,
                "latency_ms": round(record.latency_s * 1000, 2),
                "stream": record.stream,
                "error_type": record.error_type,
                "cost_usd": record.cost_usd,
            },
        )
