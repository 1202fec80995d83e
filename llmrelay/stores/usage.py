"""The usage store protocol, the row it stores, and the error for rows it refuses.

Every call's row is both the bill (tokens, cost) and the request log's entry (route,
attempts, error message, user agent, trace id, timings); a call whose bodies were captured
(``observability.request_log.bodies``) also has a ``request_bodies`` row, written in the
same transaction and pruned after ``retention_days`` (usage rows stay).

A store's ``write`` raises :class:`RejectedRowsError` when the database is reachable but
refused the batch for what the rows hold (a string the driver cannot encode, a number out
of the column's range, a NULL in a NOT NULL column): writing the rows apart, or in a reduced
form, may succeed. Any other exception means the store itself failed (unreachable, locked,
disk full, schema missing) and the same batch may succeed later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

__all__ = [
    "ATTEMPT_LOG_CAP",
    "AttemptLike",
    "Breakdown",
    "LoggedRequest",
    "PendingBodies",
    "RejectedRowsError",
    "RequestBodies",
    "RequestFilter",
    "RequestPage",
    "SeriesPoint",
    "SummaryField",
    "Totals",
    "UsageRecord",
    "UsageStore",
    "UsageSummaryRow",
    "encode_attempt_log",
]

#: Largest ``attempt_log`` stored, in characters of JSON.
ATTEMPT_LOG_CAP = 8192
#: Largest error message of one attempt kept in ``attempt_log``, in characters.
_ATTEMPT_MESSAGE_CAP = 300


class AttemptLike(Protocol):
    """One provider attempt as :class:`~llmrelay.routing.executor.AttemptRecord` has it
    (``latency_s`` in seconds)."""

    @property
    def target(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def error_type(self) -> str | None: ...
    @property
    def latency_s(self) -> float: ...
    @property
    def message(self) -> str | None: ...


#: What ``UsageRecord.attempt_log`` holds: the JSON text as stored, or the attempts
#: themselves (objects on the request path, dicts once read back from the spill file),
#: encoded by :func:`encode_attempt_log` off the request path.
AttemptLog = str | Sequence[AttemptLike | Mapping[str, Any]]


@dataclass(slots=True)
class RequestBodies:
    """A call's captured bodies as stored: text (JSON as the client sent and received it;
    a stream as its assembled message), redacted and cut to the configured size; the flags
    say what was cut."""

    request: str | None
    response: str | None
    request_truncated: bool = False
    response_truncated: bool = False


class PendingBodies(Protocol):
    """Bodies still being kept by the call (``llmrelay.obs.capture``); rendered into
    :class:`RequestBodies` by the usage writer, off the request path."""

    def render(self, record: UsageRecord) -> RequestBodies | None:
        """The bodies to store for the finished ``record``, or None (none to keep)."""
        ...


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
    #: The attempts in order; stored as a JSON list of ``{"target", "status",
    #: "error_type", "latency_s"}`` (and ``"message"`` for a failed one), see
    #: :func:`encode_attempt_log`. Read back it is the JSON text.
    attempt_log: AttemptLog | None = None
    #: The client's API shape: ``anthropic`` or ``openai``.
    surface: str | None = None
    #: The configured name that served the call (``account/model`` or a virtual model):
    #: the route decision. It differs from ``model`` when a routing rule changed it.
    routed_model: str | None = None
    #: The error message the client got (or that ended its stream); for a client that left
    #: mid-stream (499) or a stream cut before its last event, how its output tokens were
    #: counted (``core/delivered.py``).
    error_message: str | None = None
    #: The client's ``user-agent`` header.
    user_agent: str | None = None
    #: The trace id (32 lowercase hex digits) of the client's ``traceparent`` header.
    trace_id: str | None = None
    #: Milliseconds the gateway itself took (to the first streamed byte for streams).
    overhead_ms: float | None = None
    #: Milliseconds spent waiting on providers before the client's first byte.
    upstream_ms: float | None = None
    #: False when the provider's answer carried no usage (a passthrough call: a file
    #: download, a batch listing): the token counts above are then 0 standing for
    #: *unknown*, and ``cost_usd`` is None. None (older rows) and True: the counts are real.
    tokens_known: bool | None = None
    #: Who pays: None for the account's API key at the list price; ``subscription`` (the
    #: caller's own Claude subscription paid: ``cost_usd`` is the list price, for reporting,
    #: left out of budget spend); ``subscription_budgeted`` (the same, from an account with
    #: ``budget_subscription: true``: counted); ``batch`` (Message Batches results, priced
    #: at the batch discount).
    billing: str | None = None
    #: Captured bodies (not a usage column: they go to ``request_bodies``).
    bodies: RequestBodies | PendingBodies | None = field(default=None, compare=False, repr=False)


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


@dataclass(slots=True, frozen=True)
class RequestFilter:
    """Which rows ``UsageStore.requests`` returns. Every field set must match: ``key`` (key
    name), ``team``, ``model`` (as the client asked), ``provider`` (the account that
    served), ``status`` between ``status_min`` and ``status_max`` (inclusive), ``ts`` in
    [``since``, ``until``) (Unix seconds), ``request_id`` starting with
    ``request_id_prefix``. ``before_id`` pages newest first (rows with a smaller id);
    ``after_id`` follows new rows oldest first (rows with a larger id)."""

    key: str | None = None
    team: str | None = None
    model: str | None = None
    provider: str | None = None
    status_min: int | None = None
    status_max: int | None = None
    since: float | None = None
    until: float | None = None
    request_id_prefix: str | None = None
    before_id: int | None = None
    after_id: int | None = None
    limit: int = 50


@dataclass(slots=True)
class LoggedRequest:
    """One row of the request log: the usage row's ``id`` (increasing with each write),
    the row, and whether bodies were captured for its request id."""

    id: int
    record: UsageRecord
    has_bodies: bool = False


@dataclass(slots=True)
class RequestPage:
    """A page of the request log; ``next_before_id`` continues it (None: the last page)."""

    items: list[LoggedRequest]
    next_before_id: int | None = None


def encode_attempt_log(value: AttemptLog | None) -> str | None:
    """``attempt_log`` as stored: JSON text of at most :data:`ATTEMPT_LOG_CAP` characters.

    Text passes unchanged (it was capped when recorded). Attempts (objects or dicts) become
    ``{"target", "status", "error_type", "latency_s"}`` with a failed one's ``"message"``
    (cut to 300 characters); a list too long keeps its leading entries whole and ends with
    ``{"truncated": <entries left out>}``. Lone surrogates and NUL become U+FFFD. Runs in
    the usage writer's thread; never raises for attempts of the expected shape.
    """
    if value is None or isinstance(value, str):
        return value
    entries = [_attempt_entry(a) for a in value]
    text = _dumps(entries)
    if len(text) <= ATTEMPT_LOG_CAP:
        return text
    room = ATTEMPT_LOG_CAP - len('[,{"truncated":}]') - len(str(len(entries)))
    kept: list[str] = []
    for entry in entries:
        piece = _dumps(entry)
        room -= len(piece) + 1
        if room < 0:
            break
        kept.append(piece)
    return "[" + ",".join([*kept, f'{{"truncated":{len(entries) - len(kept)}}}']) + "]"


def _attempt_entry(a: AttemptLike | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(a, Mapping):
        get = a.get
        target, status, error_type = get("target"), get("status"), get("error_type")
        latency, message = get("latency_s"), get("message")
    else:  # getattr with defaults: a damaged entry must not fail its batch
        target, status = getattr(a, "target", ""), getattr(a, "status", 0)
        error_type, latency = getattr(a, "error_type", None), getattr(a, "latency_s", 0.0)
        message = getattr(a, "message", None)
    entry: dict[str, Any] = {
        "target": _text(target, 256),
        "status": status if type(status) is int else 0,
        "error_type": None if error_type is None else _text(error_type, 64),
        "latency_s": round(latency, 4)
        if isinstance(latency, int | float) and math.isfinite(latency)
        else 0.0,
    }
    if message is not None and error_type is not None:
        entry["message"] = _text(message, _ATTEMPT_MESSAGE_CAP)
    return entry


def _text(value: object, cap: int) -> str:
    s = value if isinstance(value, str) else str(value)
    if len(s) > cap:
        s = s[: cap - 1] + "…"
    if not s.isascii():
        s = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s)
    return s.replace("\x00", "\ufffd")


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


@dataclass(slots=True, frozen=True)
class Totals:
    """Sums over some calls: counts, tokens, USD, and seconds of latency summed."""

    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float
    latency_s: float

    @classmethod
    def of(cls, row: Sequence[Any]) -> Totals:
        """From the eight ``SUM`` columns of a rollup query (NULL sums are 0)."""
        v = [0 if x is None else x for x in row]
        n = [int(x) for x in v[:6]]
        return cls(n[0], n[1], n[2], n[3], n[4], n[5], float(v[6]), float(v[7]))


@dataclass(slots=True, frozen=True)
class SeriesPoint:
    """One bucket of a series: its start (Unix seconds, UTC) and its totals."""

    start: int
    totals: Totals


@dataclass(slots=True, frozen=True)
class Breakdown:
    """One group of a breakdown: its value (a key name, team, model or provider; ``""``
    for calls without a team) and its totals."""

    value: str
    totals: Totals


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

    def requests(self, where: RequestFilter) -> RequestPage:
        """The request log: up to ``where.limit`` rows matching ``where``, newest first (by
        id), or oldest first after ``where.after_id``. Raises the driver's error."""
        ...

    def request(self, request_id: str) -> tuple[LoggedRequest, RequestBodies | None] | None:
        """The newest row with exactly ``request_id`` and its captured bodies, or None."""
        ...

    def prune_bodies(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` captured bodies with ``ts < before`` (Unix seconds), oldest
        first, in one short transaction; the number deleted. Usage rows are never deleted."""
        ...

    def last_used(self, key_id: str) -> float | None:
        """When a key id last made a call (Unix seconds of its newest row), or None."""
        ...

    def series(self, bucket_s: int, since: int, until: int) -> list[SeriesPoint]:
        """Totals per bucket of ``bucket_s`` seconds (a multiple of 3600, UTC-aligned) over
        the hours in [``since``, ``until``) (Unix seconds), oldest first, from the hourly
        rollup; buckets without calls are absent. Raises the driver's error."""
        ...

    def breakdown(self, by: str, since: int, until: int) -> list[Breakdown]:
        """Totals per ``by`` (``key``, ``team``, ``model`` or ``provider``) over
        [``since``, ``until``) from the hourly rollup, most spent first. Raises
        ``ValueError`` for another ``by``, else the driver's error."""
        ...

    def close(self) -> None: ...
