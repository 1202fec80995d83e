"""Per-request overrides of a call's retries and timeouts, bounded by what its key allows.

A client may ask, per request (``docs/headers.md``):

* ``x-llmrelay-retry: attempts=3; statuses=429,503`` (or just ``3``): attempts per target,
  the first included, and the statuses retried on the same target;
* ``x-llmrelay-timeout-ms: 30000``: each attempt's time limit, in milliseconds;
* ``x-llmrelay-ttft-timeout-ms: 5000``: a stream's time to its first event, in milliseconds
  (streams only, as ``first_token_timeout_s``).

Each key's allowance (``auth.keys[].overrides`` in config; the defaults of
:class:`OverrideAllowance` for virtual keys) caps them: a value above it is clamped to it, a
status it does not list is dropped, and the response names what was clamped in
``x-llmrelay-overrides-clamped`` (``retry.attempts=3, timeout-ms=60000``). A header that does
not parse is a 400 ``invalid_request_error`` naming it (its value echoed clipped). The whole
call stays bounded by the serving account's ``timeouts.total_s`` (a virtual model's
``deadline_s``) whatever a request asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..core.text import clip
from ..errors import InvalidRequestError
from ..routing.virtual import AttemptPolicy

__all__ = [
    "CLAMPED_HEADER",
    "DEFAULT_RETRY_STATUSES",
    "MAX_HEADER_CHARS",
    "RETRY_HEADER",
    "TIMEOUT_HEADER",
    "TTFT_HEADER",
    "OverrideAllowance",
    "Overrides",
    "read_overrides",
]

RETRY_HEADER = "x-llmrelay-retry"
TIMEOUT_HEADER = "x-llmrelay-timeout-ms"
TTFT_HEADER = "x-llmrelay-ttft-timeout-ms"
CLAMPED_HEADER = "x-llmrelay-overrides-clamped"
#: Longest override header value read; a longer one is refused (400).
MAX_HEADER_CHARS = 200
#: The statuses a key may ask retries on unless its config says otherwise.
DEFAULT_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


@dataclass(slots=True, frozen=True)
class OverrideAllowance:
    """What one key's requests may ask: at most ``max_attempts`` attempts per target, retries
    on ``retry_statuses`` only, attempt and first-event limits up to ``max_timeout_ms`` and
    ``max_ttft_timeout_ms`` milliseconds."""

    max_attempts: int = 3
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    max_timeout_ms: int = 600_000
    max_ttft_timeout_ms: int = 600_000


@dataclass(slots=True, frozen=True)
class Overrides:
    """A request's overrides after clamping; None fields keep the configured value.
    ``clamped`` lists ``name=value`` for each one the allowance cut."""

    attempts: int | None = None
    retry_on: frozenset[int] | None = None
    timeout_s: float | None = None
    first_token_timeout_s: float | None = None
    clamped: tuple[str, ...] = ()

    def policy(self, base: AttemptPolicy) -> AttemptPolicy:
        """``base`` with these overrides applied."""
        return replace(
            base,
            attempts_per_target=base.attempts_per_target
            if self.attempts is None
            else self.attempts,
            retry_on=base.retry_on if self.retry_on is None else self.retry_on,
            timeout_s=base.timeout_s if self.timeout_s is None else self.timeout_s,
            first_token_timeout_s=self.first_token_timeout_s or base.first_token_timeout_s,
        )

    def headers(self) -> dict[str, str]:
        """The response header saying what was clamped (none when nothing was)."""
        return {CLAMPED_HEADER: ", ".join(self.clamped)} if self.clamped else {}


def read_overrides(headers: Mapping[str, str], allowance: OverrideAllowance) -> Overrides | None:
    """The request's overrides clamped to ``allowance``; None when it sent none.

    Raises :class:`~llmrelay.errors.InvalidRequestError` for a header that does not parse
    (longer than :data:`MAX_HEADER_CHARS`, not an integer, an attempt count below 1, a
    status outside 400-599).
    """
    retry = headers.get(RETRY_HEADER)
    timeout = headers.get(TIMEOUT_HEADER)
    ttft = headers.get(TTFT_HEADER)
    if retry is None and timeout is None and ttft is None:
        return None
    clamped: list[str] = []
    attempts = retry_on = None
    if retry is not None:
        asked_attempts, asked_statuses = _parse_retry(retry)
        if asked_attempts is not None:
            attempts = min(asked_attempts, allowance.max_attempts)
            if attempts < asked_attempts:
                clamped.append(f"retry.attempts={attempts}")
        if asked_statuses is not None:
            retry_on = asked_statuses & allowance.retry_statuses
            if retry_on != asked_statuses:
                kept = ",".join(str(s) for s in sorted(retry_on)) or "none"
                clamped.append(f"retry.statuses={kept}")
    timeout_s = ttft_s = None
    if timeout is not None:
        ms = _milliseconds(TIMEOUT_HEADER, timeout)
        if ms > allowance.max_timeout_ms:
            ms = allowance.max_timeout_ms
            clamped.append(f"timeout-ms={ms}")
        timeout_s = ms / 1000
    if ttft is not None:
        ms = _milliseconds(TTFT_HEADER, ttft)
        if ms > allowance.max_ttft_timeout_ms:
            ms = allowance.max_ttft_timeout_ms
            clamped.append(f"ttft-timeout-ms={ms}")
        ttft_s = ms / 1000
    return Overrides(attempts, retry_on, timeout_s, ttft_s, tuple(clamped))


def _bad(name: str, value: str, expected: str) -> InvalidRequestError:
    return InvalidRequestError(f"{name}: expected {expected}, got {clip(value, 60)!r}")


def _integer(name: str, value: str, expected: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise _bad(name, value, expected)
    return int(text)


def _milliseconds(name: str, value: str) -> int:
    expected = "a whole number of milliseconds from 1 to 999999999"
    if len(value) > MAX_HEADER_CHARS:
        raise _bad(name, value, expected)
    ms = _integer(name, value, expected)
    if ms < 1:
        raise _bad(name, value, expected)
    return ms


def _parse_retry(value: str) -> tuple[int | None, frozenset[int] | None]:
    """``N`` or ``attempts=N; statuses=S,S`` (either part may be left out)."""
    expected = "'attempts=N; statuses=429,503' or a number of attempts"
    if len(value) > MAX_HEADER_CHARS:
        raise _bad(RETRY_HEADER, value, expected)
    text = value.strip()
    if text.isascii() and text.isdigit():
        text = f"attempts={text}"
    attempts: int | None = None
    statuses: frozenset[int] | None = None
    for part in text.split(";"):
        key, eq, raw = part.partition("=")
        key = key.strip().lower()
        if not eq or key not in ("attempts", "statuses"):
            raise _bad(RETRY_HEADER, value, expected)
        if key == "attempts":
            attempts = _integer(RETRY_HEADER, raw, expected)
            if attempts < 1:
                raise _bad(RETRY_HEADER, value, "attempts of 1 or more")
        else:
            codes = [_integer(RETRY_HEADER, s, expected) for s in raw.split(",") if s.strip()]
            if any(not 400 <= c <= 599 for c in codes):
                raise _bad(RETRY_HEADER, value, "statuses from 400 to 599")
            statuses = frozenset(codes)
    return attempts, statuses
