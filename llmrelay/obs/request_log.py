"""The request log as the admin API and ``llmrelay logs`` show it: query parameters to a
:class:`~llmrelay.stores.usage.RequestFilter`, rows to JSON, and the page cursor.

Parameters (all optional; every one given must match):

- ``key``, ``team``, ``model`` (as the client asked), ``provider`` (the account that
  served): exact values;
- ``status``: a code (``429``) or a class (``5xx``, ``4xx``);
- ``since``, ``until``: a duration before now (``90s``, ``15m``, ``1h``, ``7d``, ``2w``), a
  UTC date (``2026-12-06``), an ISO 8601 time (``2026-12-06T18:00:00Z``) or Unix seconds;
  ``since`` is inclusive, ``until`` exclusive;
- ``request_id``: a prefix of the request id;
- ``limit``: 1 to 1000 rows (default 50); ``cursor``: ``next_cursor`` of the previous page.

Every value is at most :data:`MAX_VALUE_CHARS` characters; ``until`` must be after
``since``. Anything else raises ``ValueError`` naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ..policy.virtual_keys import KeySpecError, parse_duration
from ..stores.usage import LoggedRequest, RequestBodies, RequestFilter, UsageRecord

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_VALUE_CHARS",
    "PARAMETERS",
    "attempts_json",
    "decode_cursor",
    "detail_json",
    "encode_cursor",
    "filter_from",
    "iso_time",
    "parse_status",
    "parse_time",
    "record_json",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
PARAMETERS = (
    "key",
    "team",
    "model",
    "provider",
    "status",
    "since",
    "until",
    "request_id",
    "limit",
    "cursor",
)
#: Longest value of a parameter, in characters (a key or model name is far shorter).
MAX_VALUE_CHARS = 512
_STATUS_CLASS = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_CURSOR_PREFIX = b"id:"
_MAX_ID = 2**63 - 1
_MAX_ID_DIGITS = len(str(_MAX_ID)) + 16  # leading zeros allowed; no int() of a huge text


def parse_status(text: str) -> tuple[int, int]:
    """``429`` -> (429, 429); ``5xx`` -> (500, 599). Raises ``ValueError``."""
    text = text.strip()
    m = _STATUS_CLASS.match(text)
    if m is not None:
        lo = int(m.group(1)) * 100
        return lo, lo + 99
    if text.isdigit() and 100 <= int(text) <= 599:
        return int(text), int(text)
    raise ValueError(f"status: expected a code such as 429 or a class such as 5xx, got {text!r}")


def parse_time(text: str, name: str, now: float | None = None) -> float:
    """Unix seconds for a duration before now, a UTC date, an ISO 8601 time (UTC unless it
    says otherwise) or Unix seconds. Raises ``ValueError`` naming ``name``."""
    now = time.time() if now is None else now
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    else:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    try:
        return now - parse_duration(text)
    except KeySpecError:
        raise ValueError(
            f"{name}: expected a duration before now (15m, 1h, 7d), a date (2026-12-06),"
            f" an ISO 8601 time or Unix seconds, got {text!r}"
        ) from None


def encode_cursor(before_id: int | None) -> str | None:
    """The opaque ``next_cursor`` for a page that continues before row ``before_id``."""
    if before_id is None:
        return None
    return base64.urlsafe_b64encode(_CURSOR_PREFIX + str(before_id).encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The row id in a cursor from :func:`encode_cursor`. Raises ``ValueError``."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    digits = raw[len(_CURSOR_PREFIX) :]
    # Row ids are 64-bit signed integers: a larger one is no row's (and overflows SQLite).
    if (
        not raw.startswith(_CURSOR_PREFIX)
        or not digits.isdigit()
        or len(digits) > _MAX_ID_DIGITS
        or int(digits) > _MAX_ID
    ):
        raise ValueError("cursor: not a cursor this gateway gave (use next_cursor as it is)")
    return int(digits)


def filter_from(params: Mapping[str, str], now: float | None = None) -> RequestFilter:
    """A filter from query parameters (see the module docstring). Raises ``ValueError``
    naming the parameter at fault."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)}; expected some of {', '.join(PARAMETERS)}"
        )
    for name, value in params.items():
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"{name}: at most {MAX_VALUE_CHARS} characters, got {len(value)}")
    limit = DEFAULT_LIMIT
    if "limit" in params:
        text = params["limit"].strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise ValueError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {text!r}")
        limit = int(text)
    status_min = status_max = None
    if params.get("status"):
        status_min, status_max = parse_status(params["status"])
    since = until = None
    if params.get("since"):
        since = parse_time(params["since"], "since", now)
    if params.get("until"):
        until = parse_time(params["until"], "until", now)
    if since is not None and until is not None and until <= since:
        raise ValueError("until: expected a time after since (the range is empty)")
    before_id = decode_cursor(params["cursor"]) if params.get("cursor") else None
    return RequestFilter(
        key=params.get("key") or None,
        team=params.get("team") or None,
        model=params.get("model") or None,
        provider=params.get("provider") or None,
        status_min=status_min,
        status_max=status_max,
        since=since,
        until=until,
        request_id_prefix=params.get("request_id") or None,
        before_id=before_id,
        limit=limit,
    )


def iso_time(ts: float) -> str:
    """``2026-12-06T18:49:12.345Z`` (UTC, milliseconds)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


def record_json(item: LoggedRequest) -> dict[str, Any]:
    """One call as ``GET /admin/requests`` lists it (times in milliseconds)."""
    r = item.record
    return {
        "request_id": r.request_id,
        "time": iso_time(r.ts),
        "ts": r.ts,
        "surface": r.surface,
        "endpoint": r.endpoint,
        "stream": r.stream,
        "key_name": r.key_name,
        "key_id": r.key_id,
        "team": r.team,
        "model": r.model,
        "routed_model": r.routed_model,
        "rerouted": r.routed_model is not None and r.routed_model != r.model,
        "provider": r.provider,
        "provider_model": r.provider_model,
        "status": r.status,
        "error_type": r.error_type,
        "error_message": r.error_message,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cache_creation_input_tokens": r.cache_creation_input_tokens,
        "cache_read_input_tokens": r.cache_read_input_tokens,
        "cost_usd": r.cost_usd,
        "tokens_known": None if r.tokens_known is None else bool(r.tokens_known),
        "billing": r.billing,
        "latency_ms": _ms(r.latency_s),
        "ttft_ms": _ms(r.ttft_s),
        "overhead_ms": _round(r.overhead_ms),
        "upstream_ms": _round(r.upstream_ms),
        "attempts": r.attempts,
        "user_agent": r.user_agent,
        "trace_id": r.trace_id,
        "upstream_request_id": r.upstream_request_id,
        "has_bodies": item.has_bodies,
    }


def attempts_json(r: UsageRecord) -> Any:
    """The attempts of call ``r`` as ``GET /admin/requests/{request_id}`` shows them: the
    stored ``attempt_log`` parsed (the text as stored if it is not JSON), else the one
    attempt the row itself describes (a single attempt is stored as NULL), else None."""
    log = r.attempt_log
    if isinstance(log, str):
        try:
            return orjson.loads(log)
        except orjson.JSONDecodeError:
            return log
    if r.provider and r.routed_model:
        # One attempt that served the model asked for is stored as the row itself.
        return [
            {
                "target": r.routed_model,
                "status": r.status,
                "error_type": r.error_type,
                "latency_s": None if r.upstream_ms is None else round(r.upstream_ms / 1000, 4),
            }
        ]
    return None


def detail_json(item: LoggedRequest, bodies: RequestBodies | None) -> dict[str, Any]:
    """One call as ``GET /admin/requests/{request_id}`` shows it: the list's fields, the
    attempts, and the captured bodies (text, as stored) or null."""
    out = record_json(item)
    out["attempt_log"] = attempts_json(item.record)
    out["bodies"] = (
        None
        if bodies is None
        else {
            "request": bodies.request,
            "response": bodies.response,
            "request_truncated": bodies.request_truncated,
            "response_truncated": bodies.response_truncated,
        }
    )
    return out
