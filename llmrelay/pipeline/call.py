"""The call pipeline's data: one client call, the gateway parts it reads, and the observers
that see it end.

The pipeline (``run.py``) runs every call the same way, whatever the client's surface:
authenticate → read the body → route → admit → send (attempts, fallbacks) → relay the
answer → settle and record. Surfaces only decode the client's request and encode answers
and errors in their own envelope (``surface.py``). Observers (usage, access log, later
metrics and traces) see each call once, when it ends, and never raise into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aiohttp import web

from ..core.events import Event
from ..core.usage import Usage
from ..errors import GatewayError
from ..routing.executor import AttemptRecord
from ..routing.table import Route
from ..stores.usage import UsageRecord

if TYPE_CHECKING:
    from ..config import Settings
    from ..drain import Drain
    from ..policy.admission import Admission, Policy
    from ..policy.auth import KeyRing, Principal
    from ..routing.router import Router
    from ..tokens import TokenCounter

__all__ = ["Call", "CallObserver", "CallTrace", "Capture", "Parts", "SurfaceName"]

#: The API shape a client speaks.
SurfaceName = Literal["anthropic", "openai"]


class CallObserver(Protocol):
    """Sees every call start and end (its response sent or abandoned)."""

    def call_started(self, call: Call) -> None:
        """A call arrived (nothing is known of it yet but its surface and endpoint)."""
        ...

    def call_ended(self, call: Call) -> None:
        """Read the call; must be cheap and must not block (queue anything slow)."""
        ...


class CallTrace(Protocol):
    """One call's trace, attached to :attr:`Call.trace` by a tracing observer when the call
    starts (None when tracing is off: then nothing of it runs). Each provider attempt is
    bracketed by :meth:`attempt_started` and :meth:`attempt_ended`; in between,
    :meth:`upstream_headers` are the headers that carry the attempt's trace context."""

    @property
    def trace_id_hex(self) -> str:
        """The trace the call joined or started (32 hex digits), for log lines."""
        ...

    def attempt_started(self, route: Route) -> None: ...

    def upstream_headers(self) -> list[tuple[str, str]]: ...

    def attempt_ended(self, attempt: AttemptRecord) -> None: ...


class Capture(Protocol):
    """Keeps what a call was asked and answered, for the request log, when body capture
    applies to it (:attr:`Call.capture`; None otherwise: then nothing of it runs).
    :meth:`request` gets the client's body once read; exactly one of the three answer
    feeds is used per call."""

    def request(self, raw: bytes) -> None:
        """The client's request body, as it arrived."""
        ...

    def whole(self, body: bytes) -> None:
        """A whole response body (JSON, an error envelope)."""
        ...

    def chunk(self, data: bytes) -> None:
        """Stream bytes as they went to the client (a passthrough, in the client's wire)."""
        ...

    def event(self, event: Event) -> None:
        """A canonical stream event on its way to the client (a translation)."""
        ...


class Parts(Protocol):
    """The gateway's parts a call reads. The app's ``Gateway`` satisfies it; surfaces and the
    pipeline take it instead of importing the app, so imports point one way."""

    settings: Settings
    keys: KeyRing
    router: Router
    policy: Policy
    tokens: TokenCounter
    #: The process's shutdown state: ends open streams when a drain runs out.
    drain: Drain

    @property
    def observers(self) -> Sequence[CallObserver]:
        """Who sees each call end, in order."""
        ...

    def capture_for(self, call: Call) -> Capture | None:
        """The body capture for an authenticated call (its caller known), or None."""
        ...


@dataclass(slots=True, eq=False)
class Call:
    """What one client call carries from start to end.

    ``started`` is ``time.perf_counter()`` at arrival; ``deadline`` the event loop time
    (``loop.time()``) by which the whole call must be done, set once the serving provider
    is known (its ``timeouts.total_s``). ``caller`` is None for a call refused before it
    had one (401). ``response`` is the stream response once its headers went out, after
    which errors can only be sent as stream events.
    """

    parts: Parts
    request: web.Request
    surface: SurfaceName
    record: UsageRecord
    usage: Usage
    started: float
    caller: Principal | None = None
    admission: Admission | None = None
    deadline: float | None = None
    #: Seconds the serving provider allows the whole call (its ``timeouts.total_s``).
    total_s: float = 0.0
    response: web.StreamResponse | None = None
    #: The public name of what serves the call (the model, or the virtual model), once
    #: routed: a name from the config, safe as a metric label (``record.model`` is the
    #: client's string).
    routed: str = ""
    #: Every provider attempt, in order.
    attempts: list[AttemptRecord] = field(default_factory=list)
    #: Seconds spent waiting on providers before the client's first byte: attempts (to the
    #: answer, or to the first event when gated) and the wait for a stream's first chunk.
    provider_s: float = 0.0
    #: Seconds spent between attempts (backoff, ``retry-after``).
    waited_s: float = 0.0
    #: Seconds spent waiting for the client's body after its headers (a slow upload).
    upload_s: float = 0.0
    #: The gateway's own refusal or failure, when the call ended with one.
    error: GatewayError | None = None
    #: The call's trace when tracing is on.
    trace: CallTrace | None = None
    #: The client's request body (a JSON object), once read.
    body: dict[str, Any] | None = None
    #: Where the answer is kept for the request log, when body capture applies.
    capture: Capture | None = None

    def upstream_headers(self, client: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers for a provider request: ``client``'s plus the trace context of the
        current attempt when tracing is on (its lower-case names replace the client's)."""
        if self.trace is None:
            return client
        extra = self.trace.upstream_headers()
        if not extra:
            return client
        # The attempt's context replaces the client's: one traceparent, naming the attempt.
        names = {k for k, _ in extra}
        return [h for h in client if h[0].lower() not in names] + extra

    def overhead_s(self, now: float | None = None) -> float:
        """Seconds the gateway itself took up to ``now`` (``time.perf_counter()``; default:
        the first streamed byte, else the end of the call): elapsed minus the providers'
        time, the waits between attempts and the wait for the client's body."""
        if now is None:
            if self.record.ttft_s is not None:
                elapsed = self.record.ttft_s
            else:
                elapsed = self.record.latency_s
        else:
            elapsed = now - self.started
        return max(0.0, elapsed - self.provider_s - self.waited_s - self.upload_s)
