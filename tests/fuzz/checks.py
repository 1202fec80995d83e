"""What every answer must be, and the ledger of what the fuzz sent.

Per answer (:func:`problems`): an answer came (no hang, no reset, no broken framing); no
5xx unless an upstream fault was there (a fault queued on the fakes, or the account on a
closed port) or the server refused a connection over its limit; every 4xx/5xx is JSON in
the caller's envelope (Anthropic's, OpenAI's for ``/v1/chat/...``, ``/openai/...`` and the
OpenAI-shaped ``GET /v1/models``) with the request id the surface gives; no secret in any
header or body; HEAD answers carry no body; streams end with their end marker or an error
in the envelope. The HTTP parser's own refusals (400/408 without a request id, before any
route) are accepted only for requests that carry bytes it may refuse.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmrelay.surfaces.dispatch import OPENAI_RESOURCES

from .cases import Case
from .env import SECRETS, fault_models
from .wire import Answer

__all__ = ["Ledger", "problems", "secret_in"]

_WINDOW = 16


def _windows() -> tuple[bytes, ...]:
    out: set[bytes] = set()
    for s in SECRETS:
        raw = s.encode()
        out.update(raw[i : i + _WINDOW] for i in range(len(raw) - _WINDOW + 1))
    return tuple(sorted(out))


#: Every 16-byte piece of every secret: a masked or clipped echo still shows one.
_SECRET_PIECES = _windows()


def secret_in(data: bytes) -> bytes | None:
    """A piece of a secret found in ``data``, or None."""
    for piece in _SECRET_PIECES:
        if piece in data:
            return piece
    return None


def _has_header(case: Case, name: bytes) -> bool:
    return any(k.lower() == name for k, _ in case.headers)


def surface_of(case: Case) -> str:
    """The envelope errors on this request's path come in."""
    if case.path.startswith(("/openai/", "/v1/chat/")):
        return "openai"
    if case.path.startswith("/anthropic/") or _has_header(case, b"anthropic-version"):
        return "anthropic"
    # OpenAI's SDK calls /v1/models and its other resources without anthropic-version.
    if case.path.startswith("/v1/") and case.path[4:].split("/")[0] in OPENAI_RESOURCES:
        return "openai"
    return "anthropic"


def server_level(answer: Answer) -> bool:
    """An answer of the HTTP server itself (a parser error, a header timeout, the
    connection limit, a request target no route matches): no route ran, so there is no
    request id."""
    return answer.header("request-id") is None and answer.status in (400, 404, 408, 503)


def _allowed_5xx(case: Case, answer: Answer) -> bool:
    status = answer.status
    if server_level(answer) and status == 503 and case.crowd:
        return True  # server.max_connections
    if case.fault is not None and case.call is not None and status in case.fault.statuses:
        return True
    model = case.model
    if case.call is not None and isinstance(model, str):
        if model in fault_models() and status in (502, 503, 504):
            return True
        if model in ("smart", "duo") and case.fault is not None and status in (502, 503, 504, 529):
            return True
    return False


def _envelope(case: Case, answer: Answer) -> list[str]:
    out = []
    try:
        body = json.loads(answer.body)
    except ValueError:
        return [f"error body is not JSON: {answer.body[:200]!r}"]
    ctype = answer.header("content-type") or ""
    if not ctype.startswith("application/json"):
        out.append(f"error content-type {ctype!r}")
    if server_level(answer):
        if not (
            isinstance(body, dict)
            and body.get("type") == "error"
            and isinstance(body.get("error"), dict)
            and body.get("request_id") is None
        ):
            out.append(f"server error not in Anthropic's envelope: {body!r:.300}")
        return out
    rid = answer.header("request-id")
    if surface_of(case) == "openai":
        err = body.get("error") if isinstance(body, dict) else None
        if not (
            isinstance(err, dict)
            and isinstance(err.get("message"), str)
            and isinstance(err.get("type"), str)
            and "param" in err
            and "code" in err
        ):
            out.append(f"error not in OpenAI's envelope: {body!r:.300}")
        if answer.header("x-request-id") != rid:
            out.append("OpenAI error without x-request-id equal to request-id")
        return out
    err = body.get("error") if isinstance(body, dict) else None
    if not (
        isinstance(body, dict)
        and body.get("type") == "error"
        and isinstance(err, dict)
        and isinstance(err.get("type"), str)
        and isinstance(err.get("message"), str)
        and isinstance(body.get("request_id"), str)
    ):
        out.append(f"error not in Anthropic's envelope (with request_id): {body!r:.300}")
    return out


def _sse(body: bytes) -> list[tuple[str, bytes]]:
    """(event name, data) of each event in an SSE body."""
    events = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "message", []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, b"\n".join(data)))
    return events


def _stream(case: Case, answer: Answer) -> list[str]:
    events = _sse(answer.body)
    if not events:
        return ["a 200 stream with no events"]
    if surface_of(case) == "openai":
        last = events[-1][1]
        if last == b"[DONE]":
            return []
        try:
            err = json.loads(last).get("error")
        except (ValueError, AttributeError):
            err = None
        if not (isinstance(err, dict) and isinstance(err.get("message"), str)):
            return [f"an OpenAI stream that ends without [DONE] or an error: {last[:200]!r}"]
        return []
    out = []
    for name, data in events:
        if name != "error":
            continue
        try:
            body = json.loads(data)
        except ValueError:
            out.append(f"stream error event is not JSON: {data[:200]!r}")
            continue
        err = body.get("error") if isinstance(body, dict) else None
        if not (
            body.get("type") == "error"
            and isinstance(err, dict)
            and isinstance(err.get("type"), str)
        ):
            out.append(f"stream error event not in Anthropic's envelope: {data[:200]!r}")
    if events[-1][0] not in ("message_stop", "error"):
        out.append(f"an Anthropic stream that ends with {events[-1][0]!r}")
    return out


def problems(case: Case, answer: Answer) -> list[str]:
    """What is wrong with ``answer`` to ``case`` (empty: nothing)."""
    out: list[str] = []
    piece = secret_in(answer.raw) or secret_in(answer.body)
    if piece is not None:
        out.append(f"a secret in the answer: {piece!r}")
    if answer.status is None:
        if answer.send_failed and answer.error in ("reset", "closed"):
            return out  # refused while the body was still going out: nothing to read
        return [*out, f"no answer: {answer.error}"]
    if answer.error is not None:
        out.append(f"broken answer: {answer.error}")
    status = answer.status
    if case.crowd:
        # Over server.max_connections: refused once the headers are in (or not at all,
        # when they never come), nothing else.
        if not (server_level(answer) and status in (503, 408, 400)):
            out.append(f"a connection over the limit got {status} {answer.body[:200]!r}")
        if status == 503 and answer.header("retry-after") != "1":
            out.append("a 503 for the connection limit without retry-after: 1")
    elif server_level(answer) and status == 503:
        out.append("a 503 for the connection limit with the connections under it")
    if server_level(answer) and status == 404 and case.target.startswith(b"/"):
        out.append("a path answered 404 by no route")
    if server_level(answer) and status != 503:
        if status == 408 and case.slow == "partial_headers":
            pass
        elif not case.raw_junk:
            out.append(
                f"the HTTP server refused a well-formed request: {status} {answer.body[:200]!r}"
            )
    if status >= 500 and not _allowed_5xx(case, answer):
        out.append(f"{status} with no upstream fault: {answer.body[:300]!r}")
    if status >= 400 and case.method != "HEAD":
        out += _envelope(case, answer)
    # A request the parser refused has no method the server could trust (aiohttp answers
    # it as "UNKNOWN /"): its 400 carries the JSON body whatever was sent.
    if case.method == "HEAD" and not server_level(answer) and (answer.body or answer.after_head):
        out.append(f"HEAD answered with a body: {(answer.body or answer.after_head)[:100]!r}")
    if not server_level(answer) and answer.header("request-id") is None and case.path != "/metrics":
        out.append("an answer without request-id")
    ctype = answer.header("content-type") or ""
    if status == 200 and ctype.startswith("text/event-stream") and case.method != "HEAD":
        out += _stream(case, answer)
    elif status < 300 and ctype.startswith("application/json") and case.method != "HEAD":
        try:
            json.loads(answer.body)
        except ValueError:
            out.append(f"a {status} JSON answer that does not parse: {answer.body[:200]!r}")
    if status == 417 and not case.expects_junk:
        out.append("a 417 without an unknown expectation")
    if case.admin is False and case.path.startswith("/admin/") and status < 400:
        out.append("an admin route answered without the admin key")
    out += _follow(case, answer)
    return out


def _follow(case: Case, answer: Answer) -> list[str]:
    """The ``GET /health`` after the case on the same connection: answered as on its own
    connection, or not at all (the server closed the connection), never garbled by what
    the case left on the connection."""
    follow = answer.follow
    if case.follow is None or follow is None:
        return []
    if follow.status is None:
        if case.follow == "sequential" and not follow.send_failed:
            return [f"a kept-alive connection closed under the next request: {follow.error}"]
        return []
    if follow.error is not None or follow.status != 200 or follow.body != b'{"status": "ok"}':
        return [f"the next request on the connection got {follow.status} {follow.body[:200]!r}"]
    return []


@dataclass
class Ledger:
    """What was sent: answers by route and status, and the calls that must have a row."""

    by_route: Counter[tuple[str, Any]] = field(default_factory=Counter)
    #: Request ids of authenticated calls (one usage row each), with what was sent.
    billed: dict[str, str] = field(default_factory=dict)
    #: Authenticated calls the HTTP server refused before any route (no row).
    refused: int = 0
    #: Authenticated calls with no answer (the server gave up on a body being sent): a
    #: row may or may not be there.
    unanswered: int = 0
    sent: int = 0
    faults: Counter[str] = field(default_factory=Counter)

    def record(self, case: Case, answer: Answer) -> None:
        self.sent += 1
        self.by_route[
            (case.label, answer.status if answer.status is not None else answer.error)
        ] += 1
        if case.fault is not None:
            self.faults[case.fault.name] += 1
        if case.call is None or case.auth is None:
            return
        if answer.status == 417 and case.expects_junk:
            return  # refused before any route ran: not a call
        rid = answer.header("request-id")
        if rid is not None:
            self.billed[rid] = (
                f"{case.label} {answer.status} {case.target[:120]!r} {case.framing}"
                f" {[(k, v[:60]) for k, v in case.headers]} {case.body[:200]!r}"
            )
        elif answer.status is None:
            self.unanswered += 1
        else:
            self.refused += 1

    def summary(self) -> str:
        """Answers by route and status (routes under 1% of requests folded together)."""
        routes: dict[str, Counter[Any]] = {}
        for (route, status), n in self.by_route.items():
            if sum(v for (r, _), v in self.by_route.items() if r == route) * 100 < self.sent:
                route = "(other routes and methods)"
            routes.setdefault(route, Counter())[status] += n
        lines = [f"ingress fuzz: {self.sent} requests, {len(self.billed)} billed calls"]
        for route in sorted(routes, key=lambda r: -sum(routes[r].values())):
            statuses = ", ".join(f"{s}: {n}" for s, n in sorted(routes[route].items(), key=str))
            lines.append(f"  {route:<44} {statuses}")
        if self.faults:
            lines.append(
                "  upstream faults: "
                + ", ".join(f"{k}: {v}" for k, v in sorted(self.faults.items()))
            )
        return "\n".join(lines)
