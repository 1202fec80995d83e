"""The usage store protocol, the row it stores, and the error for rows it refuses.

A store's ``write`` raises :class:`RejectedRowsError` when the database is reachable but
refused the batch for what the rows hold (a string the driver cannot encode, a number out
of the column's range, a NULL in a NOT NULL column): writing the rows apart, or in a reduced
form, may succeed. Any other exception means the store itself failed (unreachable, locked,
disk full, schema missing) and the same batch may succeed later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "RejectedRowsError",
    "SummaryField",
    "UsageRecord",
    "UsageStore",
    "UsageSummaryRow",
]


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
    #: The virtual key's id (``vk_...``) or ``cfg:<name>`` for a key from the config file.
    key_id: str | None = None
    team: str | None = None
    #: USD, from the price table and the usage above; None when the model has no price.
    cost_usd: float | None = None
    #: Provider calls made for this request (fallbacks and retries included).
    attempts: int = 1
    #: JSON list of the attempts, ``[{"target", "status", "error_type", "latency_s"}]``,
    #: when there was more than one.
    attempt_log: str | None = None


class RejectedRowsError(Exception):
    """The store is up but refused a batch for its content; ``__cause__`` is the driver's
    error. Raised by :meth:`UsageStore.write`; nothing of the batch was written."""


SummaryField = Literal["key", "team", "model", "day"]


@dataclass(slots=True, frozen=True)
class UsageSummaryRow:
    """Totals for one group; ``group`` holds the values of the requested fields in order
    (key name, team or ``""``, public model, or ``YYYY-MM-DD`` in UTC). ``cost_usd`` sums
    the rows' costs in USD and is None when no row of the group has one."""

    group: tuple[str, ...]
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float | None
    avg_latency_s: float


class UsageStore(Protocol):
    """Where usage rows go. Methods block (the recorder calls them from a worker thread)."""

    def write(self, records: Sequence[UsageRecord]) -> None:
        """Append rows atomically (all or none). Raises :class:`RejectedRowsError` when the
        rows' content is refused, ``OSError`` or the driver's error when the store fails."""
        ...

    def summary(
        self, group_by: Sequence[SummaryField], since: float | None = None
    ) -> list[UsageSummaryRow]:
        """Totals per group of ``group_by`` fields over rows with ``ts >= since`` (Unix
        seconds; None: all), ordered by the group."""
        ...

    def spend(self, scope: Literal["key", "team"], name: str, since: float) -> float:
        """USD spent by a key id or a team since ``since`` (Unix seconds); rows without a
        cost count as 0."""
        ...

    def rows(self) -> list[UsageRecord]:
        """Every row, oldest first (tests and exports)."""
        ...

    def close(self) -> None: ...
