"""One call's spans: the :class:`~llmrelay.pipeline.call.CallTrace` the tracing observer
attaches to a call (``tracing.py`` describes the spans; ``docs/observability.md``
lists their attributes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from ..core.text import clip
from ..pipeline.call import Call
from ..routing.executor import AttemptRecord
from ..routing.table import Route
from .trace_content import OUTPUT_MESSAGES, input_attributes, output_messages

if TYPE_CHECKING:
    from .trace_answer import Answer, AnswerReader

__all__ = ["Account", "CallTrace", "Open", "Tracer", "operation_name"]

log = logging.getLogger("llmrelay")

#: Client strings (a model name) on spans are cut to this many characters.
_MAX_STRING = 256


class Account:
    """What the attempt spans of one provider account carry: ``attributes`` (its
    ``gen_ai.provider.name``, ``server.address``...), and whether its requests carry the
    attempt's ``traceparent`` (``propagate``)."""

    __slots__ = ("attributes", "gen_ai", "propagate")

    def __init__(self, attributes: dict[str, Any], gen_ai: str, propagate: bool) -> None:
        self.attributes = attributes
        self.gen_ai = gen_ai
        self.propagate = propagate


_UNKNOWN = Account({}, "", False)


class Open:
    """A span being recorded: what its exported ``ReadableSpan`` is made of at its end."""

    __slots__ = ("attributes", "name", "span_id", "start")

    def __init__(self, name: str, span_id: int, start: int, attributes: dict[str, Any]) -> None:
        self.name = name
        self.span_id = span_id
        #: Unix time in nanoseconds.
        self.start = start
        self.attributes = attributes


class Tracer(Protocol):
    """What a call's spans need of the gateway's tracing (``tracing.Tracing``): where spans
    go when they end, and what the config says."""

    #: Per provider account: its attempt spans' attributes and propagation.
    accounts: dict[str, Account]
    #: A new span id (64 random bits).
    span_id: Callable[[], int]
    #: The names of the virtual models.
    virtual: frozenset[str]
    #: Bytes of content per attribute (0: content is never captured).
    content_limit: int

    def export(
        self,
        trace: CallTrace,
        span: Open,
        kind: SpanKind,
        parent: SpanContext | None,
        status: Status,
    ) -> None: ...


class CallTrace:
    """The spans of one call (the server span's ids, its open attempt, the attempt that
    answered). Holds the call until it ends (then lets go of it)."""

    __slots__ = (
        "_attempt",
        "_call",
        "_context",
        "_n",
        "_propagate",
        "_serving",
        "_tracing",
        "answer",
        "flags",
        "parent",
        "recording",
        "server",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        tracing: Tracer,
        call: Call,
        server: Open,
        trace_id: int,
        flags: int,
        trace_state: TraceState | None,
        parent: SpanContext | None,
    ) -> None:
        self._tracing = tracing
        self._call: Call | None = call
        #: The server span (its attributes are only filled when the call is sampled).
        self.server = server
        self.trace_id = trace_id
        #: W3C trace flags: sampled (0x01), random trace id (0x02).
        self.flags = flags
        self.trace_state = trace_state
        #: The client's span, when it sent a ``traceparent``.
        self.parent = parent
        #: Whether the call is sampled: an unsampled one records nothing.
        self.recording = bool(flags & 0x01)
        self._context: SpanContext | None = None
        self._attempt: Open | None = None
        #: The attempt that answered, open while its answer is relayed.
        self._serving: Open | None = None
        self._n = 0
        self._propagate = False
        #: The call's capture while it is traced (``Tracing.capture``).
        self.answer: AnswerReader | None = None

    @property
    def context(self) -> SpanContext:
        """The server span's context (the parent of the attempt spans)."""
        if self._context is None:
            self._context = SpanContext(
                self.trace_id,
                self.server.span_id,
                is_remote=False,
                trace_flags=TraceFlags(self.flags),
                trace_state=self.trace_state,
            )
        return self._context

    @property
    def trace_id_hex(self) -> str:
        """The call's trace id (32 hex digits), sampled or not: for log lines."""
        return f"{self.trace_id:032x}"

    # -- CallTrace: called inside the call, so they never raise into it --------------------------
    def attempt_started(self, route: Route) -> None:
        try:
            self._start_attempt(route)
        except Exception:
            log.exception("tracing an attempt failed")

    def upstream_headers(self) -> list[tuple[str, str]]:
        try:
            return self._headers()
        except Exception:
            log.exception("tracing an attempt failed")
            return []

    def attempt_ended(self, attempt: AttemptRecord) -> None:
        try:
            self._end_attempt(attempt)
        except Exception:
            log.exception("tracing an attempt failed")

    def _start_attempt(self, route: Route) -> None:
        self._n += 1
        tracing = self._tracing
        account = tracing.accounts.get(route.account, _UNKNOWN)
        self._propagate = account.propagate
        if not self.recording:
            return
        call = self._call
        operation = "chat"
        attributes = {
            **account.attributes,
            "gen_ai.request.model": route.provider_model,
            "llmrelay.target": route.public_model,
            "llmrelay.attempt": self._n,
        }
        if call is not None:
            operation = operation_name(call.record.endpoint)
            asked = _max_tokens(call.body)
            cap = route.max_output_tokens
            if asked is not None:
                attributes["gen_ai.request.max_tokens"] = asked if cap is None else min(asked, cap)
        attributes["gen_ai.operation.name"] = operation
        self._attempt = Open(
            f"{operation} {route.provider_model}", tracing.span_id(), time_ns(), attributes
        )

    def _headers(self) -> list[tuple[str, str]]:
        if not self._propagate:
            return []
        span_id = (self._attempt or self.server).span_id
        headers = [("traceparent", f"00-{self.trace_id:032x}-{span_id:016x}-{self.flags:02x}")]
        if self.trace_state:
            headers.append(("tracestate", self.trace_state.to_header()))
        return headers

    def _end_attempt(self, attempt: AttemptRecord) -> None:
        span = self._attempt
        if span is None:
            return
        self._attempt = None
        if attempt.error_type is None:
            if self._serving is not None:  # not expected: only the last attempt answers
                self._export(self._serving, SpanKind.CLIENT, None)
            self._serving = span
            return
        span.attributes["error.type"] = attempt.error_type
        span.attributes["llmrelay.attempt.status"] = attempt.status
        self._export(span, SpanKind.CLIENT, attempt.message or attempt.error_type)

    def _export(self, span: Open, kind: SpanKind, error: str | None) -> None:
        """End ``span`` now (an error status with ``error``, when given)."""
        status = _UNSET if error is None else Status(StatusCode.ERROR, clip(error, 500))
        parent = self.parent if kind is SpanKind.SERVER else self.context
        self._tracing.export(self, span, kind, parent, status)

    # -- the end of the call --------------------------------------------------------------------
    def end(self, call: Call) -> None:
        """End the call's spans with what the call's record says."""
        self._call = None
        if not self.recording:
            return
        record = call.record
        answer = self.answer.read() if self.answer is not None else None
        cut = self._attempt
        if cut is not None:  # the client went away, or the call failed mid-attempt
            self._attempt = None
            cut.attributes["error.type"] = record.error_type or "cancelled"
            self._export(cut, SpanKind.CLIENT, record.error_type or "cancelled")
        usage = _usage(call)
        serving = self._serving
        if serving is not None:
            self._serving = None
            on_attempt = serving.attributes
            on_attempt.update(usage)
            on_attempt.update(_answer_attributes(answer))
            if record.upstream_request_id:
                on_attempt["llmrelay.upstream_request_id"] = record.upstream_request_id
            error = None
            if record.error_type is not None and record.error_type != "client_disconnected":
                on_attempt["error.type"] = error = record.error_type
            self._export(serving, SpanKind.CLIENT, error)
        server = self.server
        server.attributes.update(self._call_attributes(call, answer))
        server.attributes.update(usage)
        error = None
        if record.status >= 500 or (record.status == 200 and record.error_type is not None):
            error = call.error.message if call.error is not None else record.error_type
        self._export(server, SpanKind.SERVER, error)

    def _call_attributes(self, call: Call, answer: Answer | None) -> dict[str, Any]:
        record = call.record
        out: dict[str, Any] = {"http.response.status_code": record.status}
        if record.error_type is not None:
            out["error.type"] = record.error_type
        if call.caller is None:
            return out
        out["llmrelay.key"] = record.key_name
        if record.team:
            out["llmrelay.team"] = record.team
        if record.model:
            out["gen_ai.request.model"] = clip(record.model, _MAX_STRING)
        out["gen_ai.request.stream"] = record.stream
        if call.routed in self._tracing.virtual:
            out["llmrelay.virtual_model"] = call.routed
        if record.provider:
            account = self._tracing.accounts.get(record.provider, _UNKNOWN)
            if account.gen_ai:
                out["gen_ai.provider.name"] = account.gen_ai
        if call.attempts:
            out["llmrelay.attempts"] = len(call.attempts)
            out["llmrelay.target"] = call.attempts[-1].target
        if record.cost_usd is not None:
            out["llmrelay.cost_usd"] = record.cost_usd
        out["llmrelay.overhead_s"] = call.overhead_s()
        if record.ttft_s is not None:
            out["llmrelay.ttft_s"] = record.ttft_s
        limit = self._tracing.content_limit
        if limit and call.body is not None:
            out.update(input_attributes(call.surface, call.body, limit))
            if answer is not None and answer.response is not None:
                first = next(iter(answer.finish_reasons.values()), None)
                out[OUTPUT_MESSAGES] = output_messages(answer.response, first, limit)
        return out


#: An endpoint's ``gen_ai.operation.name``: ``chat`` (well-known) or the gateway's own.
_OPERATION = {"messages": "chat", "chat_completions": "chat", "count_tokens": "count_tokens"}


def operation_name(endpoint: str) -> str:
    """The ``gen_ai.operation.name`` of a call to ``endpoint``."""
    return _OPERATION.get(endpoint, "chat")


_UNSET = Status(StatusCode.UNSET)


def _max_tokens(body: dict[str, Any] | None) -> int | None:
    """The output token limit a client's body asks for (Anthropic's ``max_tokens``,
    OpenAI's ``max_completion_tokens`` or ``max_tokens``)."""
    if body is None:
        return None
    value = body.get("max_tokens")
    if value is None:
        value = body.get("max_completion_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(call: Call) -> dict[str, int]:
    """The call's ``gen_ai.usage.*``; ``input_tokens`` counts cached tokens too."""
    record = call.record
    if record.provider_model == "" or call.caller is None:
        return {}
    cache_read = record.cache_read_input_tokens
    cache_creation = record.cache_creation_input_tokens
    out = {
        "gen_ai.usage.input_tokens": record.input_tokens + cache_read + cache_creation,
        "gen_ai.usage.output_tokens": record.output_tokens,
    }
    if cache_read:
        out["gen_ai.usage.cache_read.input_tokens"] = cache_read
    if cache_creation:
        out["gen_ai.usage.cache_creation.input_tokens"] = cache_creation
    return out


def _answer_attributes(answer: Answer | None) -> dict[str, Any]:
    if answer is None:
        return {}
    out: dict[str, Any] = {}
    if answer.id is not None:
        out["gen_ai.response.id"] = clip(answer.id, _MAX_STRING)
    if answer.model is not None:
        out["gen_ai.response.model"] = clip(answer.model, _MAX_STRING)
    if answer.finish_reasons:
        out["gen_ai.response.finish_reasons"] = [
            answer.finish_reasons[i] for i in sorted(answer.finish_reasons)
        ]
    return out
