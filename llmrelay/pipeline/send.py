"""The provider send: a call's resolved target to its answer or final error.

An ``account/model`` gets exactly one attempt, without the first-chunk gate. A virtual
model goes through the executor (``routing/executor.py``): targets in the plan's order,
retries, fallbacks, the gate. Either way the response carries ``x-llmrelay-model`` (the
target that answered) and ``x-llmrelay-attempts``, the usage row names the serving target
and the attempts, and the whole call is bounded by the serving provider's
``timeouts.total_s`` (counted from the call's arrival): an answer that has not come in time
is a 504, a stream still running then ends with the surface's error event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..deadlines import deadline_at
from ..errors import GatewayError
from ..policy.limits import token_estimate, tokens_counted
from ..policy.overrides import Overrides, read_overrides
from ..policy.targets import TargetHold
from ..routing.executor import AttemptRecord, Failure, Outcome, Success, execute
from ..routing.health import Health
from ..routing.router import Plan
from ..routing.table import Route
from ..routing.virtual import AttemptPolicy, VirtualModel
from ..stores.usage import UsageRecord
from .body import body_size
from .call import Call, CallTrace
from .surface import Answer, Attempter, AttemptResult

__all__ = ["ATTEMPTS_HEADER", "MODEL_HEADER", "send"]

log = logging.getLogger("llmrelay.routing")

MODEL_HEADER = "x-llmrelay-model"
ATTEMPTS_HEADER = "x-llmrelay-attempts"


async def send(
    call: Call, target: Route | VirtualModel, attempter: Attempter
) -> web.StreamResponse:
    """Serve ``call`` from ``target``: one attempt for a route, the executor for a virtual
    model. Provider failures become error responses here; nothing is raised for them.
    Per-request overrides (``policy/overrides.py``) run a route's attempts through the
    executor too; an override header that does not parse raises ``InvalidRequestError``."""
    overrides = None
    if call.caller is not None:
        overrides = read_overrides(call.request.headers, call.caller.overrides)
    if isinstance(target, Route) and overrides is not None:
        return await _send_overridden(call, target, attempter, overrides)
    if isinstance(target, Route):
        _name_target(call.record, target)
        _set_deadline(call, target)
        headers = {MODEL_HEADER: target.public_model, ATTEMPTS_HEADER: "1"}
        trace = call.trace
        if trace is not None:
            trace.attempt_started(target)
        began = time.perf_counter()
        try:
            with deadline_at(call.deadline):
                result = await attempter.attempt(target, False)
        except TimeoutError:
            result = Failure(504, "timeout_error", _late(call), "timeout")
        except GatewayError as err:
            result = Failure.from_error(err)
        took = time.perf_counter() - began
        call.provider_s += took
        attempt = _attempt_record(target, result, took)
        call.attempts.append(attempt)
        if trace is not None:
            trace.attempt_ended(attempt)
        return await _respond(call, result, headers, attempter)
    return await _send_virtual(call, target, attempter, overrides)


async def _send_overridden(
    call: Call, route: Route, attempter: Attempter, overrides: Overrides
) -> web.StreamResponse:
    """One route under per-request overrides: the executor makes its attempts (retries on
    the asked statuses, each attempt and a stream's first event bounded as asked), within
    the route's ``timeouts.total_s``. No fallback, no cooldown: one route has no other."""
    record = call.record
    _name_target(record, route)
    _set_deadline(call, route)
    assert call.caller is not None
    left = max(0.0, route.total_s - (time.perf_counter() - call.started))
    base = AttemptPolicy(
        retry_on=call.caller.overrides.retry_statuses,
        timeout_s=left,
        deadline_s=left,
        fallback_on_timeout=False,
        fallback_on_connect_error=False,
    )
    trace = call.trace

    async def attempt(target: Route) -> AttemptResult:
        if trace is None:
            return await attempter.attempt(target, True)
        return await _traced(trace, target, attempter)

    outcome = await execute(
        [route],
        attempt,
        overrides.policy(base),
        stream=record.stream,
        health=Health(failures=1 << 30, cooldown_s=0.0, max_retry_after_s=0.0),
        rng=call.parts.router.rng,
    )
    call.attempts = outcome.attempts
    call.provider_s += sum(a.latency_s for a in outcome.attempts)
    call.waited_s += outcome.waited_s
    _record_attempts(call, outcome)
    headers = {
        MODEL_HEADER: route.public_model,
        ATTEMPTS_HEADER: str(len(outcome.attempts)),
        **overrides.headers(),
    }
    if outcome.failure is not None:
        return await _respond(call, outcome.failure, headers, attempter)
    assert outcome.value is not None
    return await _respond(call, Success(outcome.value), headers, attempter)


def _attempt_record(route: Route, result: AttemptResult, took: float) -> AttemptRecord:
    if isinstance(result, Failure):
        return AttemptRecord(
            route.public_model,
            result.status,
            result.error_type,
            took,
            result.message,
            route.account,
            result.kind != "unsupported",
        )
    return AttemptRecord(route.public_model, 200, None, took, account=route.account)


def _set_deadline(call: Call, route: Route) -> None:
    """The whole call must end ``timeouts.total_s`` after it arrived."""
    call.total_s = route.total_s
    left = route.total_s - (time.perf_counter() - call.started)
    call.deadline = asyncio.get_running_loop().time() + left


def _late(call: Call) -> str:
    return (
        f"provider {call.record.provider!r} did not answer within {call.total_s:g}s "
        "(timeouts.total_s)"
    )


async def _respond(
    call: Call, result: AttemptResult, headers: dict[str, str], attempter: Attempter
) -> web.StreamResponse:
    record = call.record
    if isinstance(result, Failure):
        record.status = result.status
        record.error_type = result.error_type
        record.error_message = result.message
        record.upstream_request_id = result.upstream_request_id
        return attempter.error_response(result, headers)
    record.upstream_request_id = result.value.upstream_request_id
    return await result.value.send(call, headers)


def _name_target(record: UsageRecord, route: Route) -> None:
    record.provider = route.account
    record.provider_model = route.provider_model


async def _send_virtual(
    call: Call, model: VirtualModel, attempter: Attempter, overrides: Overrides | None
) -> web.StreamResponse:
    router = call.parts.router
    plan = router.plan(model, call.request.headers)

    record = call.record
    tried: list[Route] = []
    targets = call.parts.policy.targets
    holds: list[TargetHold] = []

    async def attempt(route: Route) -> AttemptResult:
        tried.append(route)
        if targets.limits(route.public_model):
            # The target's own model limits: no room -> a 429 that moves on.
            hold = await targets.hold(route.public_model, await _estimate(call))
            if hold is not None:
                holds.append(hold)
        trace = call.trace
        if trace is None:
            return await attempter.attempt(route, True)
        return await _traced(trace, route, attempter)

    try:
        return await _run_virtual(call, model, plan, attempt, attempter, tried, overrides)
    finally:
        if holds:
            # The serving target is the last one tried (the executor stops at a success).
            served_by = tried[-1].public_model if record.status == 200 else None
            targets.release_soon(holds, served_by, tokens_counted(call.usage))


async def _traced(trace: CallTrace, route: Route, attempter: Attempter) -> AttemptResult:
    """One attempt of a virtual model inside its trace span (the executor times it; the span
    gets its own clock)."""
    trace.attempt_started(route)
    began = time.perf_counter()
    result: AttemptResult | None = None
    try:
        result = await attempter.attempt(route, True)
        return result
    except GatewayError as err:
        result = Failure.from_error(err)
        raise
    finally:
        took = time.perf_counter() - began
        if result is None:  # cut by a time limit (or the client left)
            result = Failure(504, "timeout_error", "cut by a time limit", "timeout")
        trace.attempt_ended(_attempt_record(route, result, took))


async def _estimate(call: Call) -> int:
    """The call's token estimate, as admission takes it."""
    return token_estimate(await body_size(call.request))


async def _run_virtual(
    call: Call,
    model: VirtualModel,
    plan: Plan,
    attempt: Callable[[Route], Awaitable[AttemptResult]],
    attempter: Attempter,
    tried: list[Route],
    overrides: Overrides | None,
) -> web.StreamResponse:
    router = call.parts.router
    record = call.record
    try:
        outcome = await execute(
            plan.targets,
            attempt,
            model.policy if overrides is None else overrides.policy(model.policy),
            stream=record.stream,
            health=router.health,
            rng=router.rng,
        )
    except asyncio.CancelledError:
        # The client went away (aiohttp cancels the handler): the row, a 499, names the
        # target that was being tried.
        if tried:
            _name_target(record, tried[-1])
            record.attempts = len(tried)
        raise
    route = outcome.route
    _name_target(record, route)
    _set_deadline(call, route)
    call.attempts = outcome.attempts
    call.provider_s += sum(a.latency_s for a in outcome.attempts)
    call.waited_s += outcome.waited_s
    _record_attempts(call, outcome)
    headers = {MODEL_HEADER: route.public_model, ATTEMPTS_HEADER: str(len(outcome.attempts))}
    if overrides is not None:
        headers.update(overrides.headers())
    if outcome.failure is not None:
        return await _respond(call, outcome.failure, headers, attempter)
    assert outcome.value is not None
    router.served(model, plan, route)
    resp = await _respond(call, Success(outcome.value), headers, attempter)
    # What the answer showed once it was out: a stream that failed midway counts against
    # its target; a complete one measures its speed.
    if record.status == 200 and record.endpoint != "count_tokens":
        if record.error_type is None:
            took = time.monotonic() - outcome.started
            router.latency.observe(route.public_model, took, call.usage.output_tokens)
        else:
            router.health.failure(route.public_model)
    return resp


def _record_attempts(call: Call, outcome: Outcome[Answer]) -> None:
    record = call.record
    attempts = outcome.attempts
    record.attempts = len(attempts)
    failed = [a for a in attempts if a.error_type is not None]
    for n, a in enumerate(failed, 1):
        log.info(
            "attempt failed",
            extra={
                "request_id": record.request_id,
                "model": record.model,
                "target": a.target,
                "attempt": n,
                "status": a.status,
                "error_type": a.error_type,
                "latency_ms": round(a.latency_s * 1000, 2),
                "error": a.message,
            },
        )
    if outcome.failure is not None and len(attempts) > 1:
        log.warning(
            "all attempts failed",
            extra={
                "request_id": record.request_id,
                "model": record.model,
                "status": outcome.failure.status,
                "attempts": [f"{a.target}: {a.status} {a.error_type}" for a in attempts],
            },
        )
