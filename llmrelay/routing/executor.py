"""The attempt loop of a call to a virtual model: retries, fallbacks, timeouts, a deadline.

Independent of client surfaces and wires: it takes the targets in order and an ``attempt``
callable that tries one target and returns :class:`Success` (an answer ready to send,
nothing sent yet) or a classified :class:`Failure`. Per target, it makes up to
``attempts_per_target`` attempts while the failure's status is in ``retry_on`` (waiting the
provider's ``retry-after`` when allowed and no longer than ``max_retry_after_s``, else an
exponential, jittered backoff); then, if the failure is one ``fallback_on`` names, it moves
to the next target; any other failure is final at once. Each attempt is bounded by
``timeout_s`` (for streams also ``first_token_timeout_s``) and by what is left of
``deadline_s``; a wait that would cross the deadline is not started.

When every target failed, the final failure is the most meaningful one (:func:`final`).
Failures are also reported to :class:`~llmrelay.routing.health.Health`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from ..deadlines import deadline_at
from ..errors import GatewayError, InvalidRequestError, UpstreamTimeout, UpstreamUnreachable
from .health import Health
from .table import Route
from .virtual import AttemptPolicy

__all__ = [
    "AttemptRecord",
    "Failure",
    "FailureKind",
    "Outcome",
    "Success",
    "execute",
    "final",
    "retry_after_s",
]

log = logging.getLogger("llmrelay.routing")

# Less time than this left before the deadline: no attempt is started (timers are coarse:
# uvloop's clock has millisecond steps, so a deadline can fire a hair early).
_MIN_LEFT_S = 0.005

T = TypeVar("T")

#: ``status``: the provider answered an error (or an error as its first stream event);
#: ``timeout``: no answer in time; ``connect_error``: the provider could not be reached;
#: ``unsupported``: this target cannot take the request (a feature its wire cannot express).
FailureKind = Literal["status", "timeout", "connect_error", "unsupported"]


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds a provider asks to wait: ``retry-after-ms``, else ``retry-after`` (seconds or an
    HTTP date); None when neither is usable."""
    ms = sec = None
    for k, v in headers.items():
        name = k.lower()
        if name == "retry-after-ms":
            ms = v
        elif name == "retry-after":
            sec = v
    try:
        if ms is not None:
            return max(0.0, float(ms) / 1000)
    except ValueError:
        pass
    if sec is None:
        return None
    try:
        return max(0.0, float(sec))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(sec)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(slots=True)
class Success(Generic[T]):
    value: T


@dataclass(slots=True)
class Failure:
    """One failed attempt, classified. ``body`` is the error already in the client's
    envelope when the attempt made one (a provider's own error body on a passthrough);
    ``headers`` are provider headers worth relaying (``retry-after``, rate limits)."""

    status: int
    error_type: str
    message: str
    kind: FailureKind = "status"
    retry_after_s: float | None = None
    #: Bytes already went to the client: nothing can be retried.
    sent: bool = False
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    upstream_request_id: str | None = None

    @classmethod
    def from_error(cls, err: GatewayError) -> Failure:
        kind: FailureKind = "status"
        if isinstance(err, UpstreamTimeout):
            kind = "timeout"
        elif isinstance(err, UpstreamUnreachable):
            kind = "connect_error"
        elif isinstance(err, InvalidRequestError):
            kind = "unsupported"
        return cls(err.status, err.error_type, err.message, kind, headers=err.headers)


@dataclass(slots=True, frozen=True)
class AttemptRecord:
    """One attempt as the usage row and the log show it; ``latency_s`` in seconds."""

    target: str
    status: int
    error_type: str | None
    latency_s: float
    message: str | None = None
    #: The provider account of ``target``.
    account: str = ""
    #: False when the gateway refused the request for this target itself (a body or
    #: feature this target's wire cannot carry: ``unsupported``) and nothing was sent: not
    #: the target's outcome, so per-target stats skip it.
    upstream: bool = True


@dataclass(slots=True)
class Outcome(Generic[T]):
    """How a call ended: ``route`` served it (``value``) or gave the final ``failure``."""

    route: Route
    value: T | None
    failure: Failure | None
    attempts: list[AttemptRecord]
    #: ``time.monotonic`` at the start of the serving attempt (for latency measurements).
    started: float
    #: Seconds spent waiting between attempts (backoff, ``retry-after``).
    waited_s: float = 0.0


Attempt = Callable[[Route], Awaitable[Success[T] | Failure]]


def _counts_against_target(f: Failure) -> bool:
    if f.kind in ("timeout", "connect_error"):
        return True
    return f.kind == "status" and (f.status in (408, 429) or f.status >= 500)


def _falls_back(f: Failure, policy: AttemptPolicy) -> bool:
    if f.kind == "unsupported":
        return True
    if f.kind == "timeout":
        return policy.fallback_on_timeout
    if f.kind == "connect_error":
        return policy.fallback_on_connect_error
    return f.status in policy.fallback_statuses or (
        f.error_type == "overloaded_error" and 529 in policy.fallback_statuses
    )


def final(failures: Sequence[tuple[Route, Failure]]) -> tuple[Route, Failure]:
    """The failure a client gets when every attempt failed: a 429 with the shortest
    ``retry-after`` when all were throttled, else the last one. Targets that could not take
    the request (``unsupported``) count only when no other target answered."""
    meaningful = [rf for rf in failures if rf[1].kind != "unsupported"] or list(failures)
    if all(f.status == 429 for _, f in meaningful):
        return min(meaningful, key=lambda rf: rf[1].retry_after_s or float("inf"))
    return meaningful[-1]


def _limit(policy: AttemptPolicy, stream: bool, left: float) -> tuple[float, str]:
    limits = [(policy.timeout_s, "timeout_s"), (left, "deadline_s")]
    if stream and policy.first_token_timeout_s is not None:
        limits.append((policy.first_token_timeout_s, "first_token_timeout_s"))
    return min(limits)


async def _one(
    attempt: Attempt[T], route: Route, limit: float, what: str, stream: bool
) -> Success[T] | Failure:
    try:
        with deadline_at(asyncio.get_running_loop().time() + limit):
            return await attempt(route)
    except TimeoutError:
        first = "first content" if stream else "answer"
        return Failure(
            504,
            "timeout_error",
            f"{route.public_model} sent no {first} within {limit:.3g}s ({what})",
            "timeout",
        )
    except GatewayError as err:
        return Failure.from_error(err)


async def execute(
    targets: Sequence[Route],
    attempt: Attempt[T],
    policy: AttemptPolicy,
    *,
    stream: bool,
    health: Health,
    rng: random.Random,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Outcome[T]:
    """Try ``targets`` in order (the module docstring has the rules)."""
    start = clock()
    deadline = start + policy.deadline_s
    records: list[AttemptRecord] = []
    failures: list[tuple[Route, Failure]] = []
    waited = 0.0
    for route in targets:
        for n in range(1, policy.attempts_per_target + 1):
            left = deadline - clock()
            if left <= _MIN_LEFT_S:
                break
            limit, what = _limit(policy, stream, left)
            began = clock()
            result = await _one(attempt, route, limit, what, stream)
            took = clock() - began
            name = route.public_model
            if isinstance(result, Success):
                health.success(name)
                records.append(AttemptRecord(name, 200, None, took, account=route.account))
                return Outcome(route, result.value, None, records, began, waited)
            records.append(
                AttemptRecord(
                    name,
                    result.status,
                    result.error_type,
                    took,
                    result.message,
                    route.account,
                    result.kind != "unsupported",
                )
            )
            failures.append((route, result))
            cut_by_deadline = result.kind == "timeout" and what == "deadline_s"
            if _counts_against_target(result) and not cut_by_deadline:
                throttled = result.status in (429, 503, 529)
                cooled = health.failure(name, result.retry_after_s if throttled else None)
                if cooled:
                    log.warning("target cooling down", extra={"target": name, "seconds": cooled})
            if result.sent:
                return Outcome(route, None, result, records, began, waited)
            if (
                result.kind == "status"
                and result.status in policy.retry_on
                and n < policy.attempts_per_target
            ):
                wait = _backoff(policy, result, n, rng)
                if wait is not None and clock() + wait < deadline:
                    await sleep(wait)
                    waited += wait
                    continue
            if not _falls_back(result, policy):
                return Outcome(route, None, result, records, began, waited)
            break
    if not failures:  # the deadline passed before the first attempt (a tiny deadline_s)
        failure = Failure(504, "timeout_error", "the call's deadline passed", "timeout")
        return Outcome(targets[0], None, failure, records, clock(), waited)
    route, failure = final(failures)
    return Outcome(route, None, failure, records, clock(), waited)


def _backoff(policy: AttemptPolicy, f: Failure, n: int, rng: random.Random) -> float | None:
    """Seconds to wait before retry ``n + 1`` on the same target; None: do not retry it."""
    if policy.use_retry_after and f.retry_after_s is not None:
        return f.retry_after_s if f.retry_after_s <= policy.max_retry_after_s else None
    base: float = policy.backoff_s * 2 ** (n - 1)
    return base * (0.5 + rng.random() / 2)
