"""The usage store protocol and the row it stores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["UsageRecord", "UsageStore", "UsageSummaryRow"]


@dataclass(slots=True)
class UsageRecord:
    """One call. Tokens are counts; ``latency_s`` and ``ttft_s`` are seconds; ``ts`` is Unix
    time in seconds. ``status`` is the HTTP status the client saw (499: client went away).
    ``provider`` and ``provider_model`` name the target that served the call (or gave the
    error the client got)."""

    ts: float
    request_id: str
    key_name: str
    model: str
    provider: str
    provider_model: str
    endpoint: str
    stream: bool
    status: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    latency_s: float = 0.0
    ttft_s: float | None = None
    error_type: str | None = None
    upstream_request_id: str | None = None
    #: Attempts made (more than one when a virtual model retried or fell back).
    attempts: int = 1
    #: With more than one attempt: JSON list of ``{"target", "status", "error_type",
    #: "latency_s"}``, in order.
    attempt_log: str | None = None


@dataclass(slots=True, frozen=True)
class UsageSummaryRow:
    key_name: str
    model: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    avg_latency_s: float


class UsageStore(Protocol):
    """Where usage rows go. Methods block (the recorder calls them from a worker thread)."""

    def write(self, records: Sequence[UsageRecord]) -> None:
        """Append rows atomically; raises ``OSError`` or the driver's error on failure."""
        ...

    def summary(self) -> list[UsageSummaryRow]:
        """Totals per (key, model), ordered by key then model."""
        ...

    def close(self) -> None: ...
