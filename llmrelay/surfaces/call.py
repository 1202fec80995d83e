"""One client call from its resolved target to the response: the provider send.

A surface knows how to try one target (:class:`Attempter`); this module makes the attempts.
An ``account/model`` gets exactly one attempt, without the first-chunk gate, as it always
did. A virtual model goes through the executor (``routing/executor.py``): targets in the
plan's order, retries, fallbacks, the gate. Either way the response carries
``x-llmrelay-model`` (the target that answered) and ``x-llmrelay-attempts``, and the usage
row names the serving target and the attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import orjson
from aiohttp import web

from ..core.events import Event
from ..core.usage import Usage
from ..errors import GatewayError
from ..policy.limits import token_estimate, tokens_counted
from ..policy.targets import TargetHold
from ..routing.executor import Failure, Outcome, Success, execute
from ..routing.gate import aclose
from ..routing.router import Plan
from ..routing.table import Route
from ..routing.virtual import VirtualModel
from ..stores.usage import UsageRecord
from .common import body_size, write_events

if TYPE_CHECKING:
    from ..app import Gateway

__all__ = [
    "Answer",
    "AttemptResult",
    "Attempter",
    "Call",
    "EventsAnswer",
    "JSONAnswer",
    "send",
]

log = logging.getLogger("llmrelay.routing")

MODEL_HEADER = "x-llmrelay-model"
ATTEMPTS_HEADER = "x-llmrelay-attempts"


@dataclass(slots=True)
class Call:
    """What one client call carries from start to end."""

    gateway: Gateway
    request: web.Request
    record: UsageRecord
    usage: Usage
    started: float


class Answer(Protocol):
    """An attempt's answer, checked and ready; nothing of it has reached the client yet."""

    upstream_request_id: str | None

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        """Send it with ``headers`` added; sets the usage row's status."""
        ...


AttemptResult = Success[Answer] | Failure


class Attempter(Protocol):
    """How a surface tries one target for one call, and renders a failure."""

    async def attempt(self, route: Route, gate: bool) -> AttemptResult:
        """One attempt. With ``gate``, a stream's first event is read before answering, and
        the client's body is copied first (each attempt starts from the client's body).

        Raises:
            GatewayError: the provider could not be reached or answered too late, or the
                request cannot be expressed in the target's wire.
        """
        ...

    def error_response(self, failure: Failure, headers: dict[str, str]) -> web.Response: ...


@dataclass(slots=True)
class JSONAnswer:
    """A whole response body. ``on_send`` reads its usage when it goes out."""

    status: int
    body: bytes
    headers: dict[str, str]
    upstream_request_id: str | None = None
    on_send: Callable[[Usage], None] | None = None

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        call.record.status = self.status
        if self.on_send is not None:
            self.on_send(call.usage)
        return web.Response(status=self.status, body=self.body, headers={**self.headers, **headers})


@dataclass(slots=True)
class EventsAnswer:
    """A canonical event stream to send in a surface's wire (``write_events``); ``head``
    holds the events the gate already pulled."""

    head: list[Event]
    events: AsyncIterator[Event]
    headers: dict[str, str]
    encode: Callable[[Event], bytes]
    encode_error: Callable[[GatewayError], bytes]
    end: bytes = b""
    upstream_request_id: str | None = None

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={**self.headers, **headers})
        events = _chain(self.head, self.events) if self.head else self.events
        return await write_events(
            call.request,
            resp,
            events,
            call.record,
            call.usage,
            call.started,
            self.encode,
            self.encode_error,
            self.end,
        )


async def _chain(head: list[Event], rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    try:
        for event in head:
            yield event
        async for event in rest:
            yield event
    finally:
        await aclose(rest)


async def send(
    call: Call, target: Route | VirtualModel, attempter: Attempter
) -> web.StreamResponse:
    """Serve ``call`` from ``target``: one attempt for a route, the executor for a virtual
    model. Provider failures become error responses here; nothing is raised for them."""
    if isinstance(target, Route):
        _name_target(call.record, target)
        headers = {MODEL_HEADER: target.public_model, ATTEMPTS_HEADER: "1"}
        try:
            result = await attempter.attempt(target, False)
        except GatewayError as err:
            result = Failure.from_error(err)
        return await _respond(call, result, headers, attempter)
    return await _send_virtual(call, target, attempter)


async def _respond(
    call: Call, result: AttemptResult, headers: dict[str, str], attempter: Attempter
) -> web.StreamResponse:
    record = call.record
    if isinstance(result, Failure):
        record.status = result.status
        record.error_type = result.error_type
        record.upstream_request_id = result.upstream_request_id
        return attempter.error_response(result, headers)
    record.upstream_request_id = result.value.upstream_request_id
    return await result.value.send(call, headers)


def _name_target(record: UsageRecord, route: Route) -> None:
    record.provider = route.account
    record.provider_model = route.provider_model


async def _send_virtual(
    call: Call, model: VirtualModel, attempter: Attempter
) -> web.StreamResponse:
    router = call.gateway.router
    plan = router.plan(model, call.request.headers)

    record = call.record
    tried: list[Route] = []
    targets = call.gateway.policy.targets
    holds: list[TargetHold] = []

    async def attempt(route: Route) -> AttemptResult:
        tried.append(route)
        if targets.limits(route.public_model):
            # The target's own model limits: no room -> a 429 that moves on.
            hold = await targets.hold(route.public_model, await _estimate(call))
            if hold is not None:
                holds.append(hold)
        return await attempter.attempt(route, True)

    try:
        return await _run_virtual(call, model, plan, attempt, attempter, tried)
    finally:
        if holds:
            # The serving target is the last one tried (the executor stops at a success).
            served_by = tried[-1].public_model if record.status == 200 else None
            targets.release_soon(holds, served_by, tokens_counted(call.usage))


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
) -> web.StreamResponse:
    router = call.gateway.router
    record = call.record
    try:
        outcome = await execute(
            plan.targets,
            attempt,
            model.policy,
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
    _record_attempts(call, outcome)
    headers = {MODEL_HEADER: route.public_model, ATTEMPTS_HEADER: str(len(outcome.attempts))}
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
    if len(attempts) > 1:
        record.attempt_log = orjson.dumps(
            [
                {
                    "target": a.target,
                    "status": a.status,
                    "error_type": a.error_type,
                    "latency_s": round(a.latency_s, 4),
                }
                for a in attempts
            ]
        ).decode()
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
