"""One gateway in front of the four fake provider wires, and the two SDK clients that call it.

The gateway has an account per wire, named for it (``anthropic``, ``openai``, ``bedrock``,
``vertex``), each serving ``<account>/m``; every account allows ``TOTAL_S`` for a whole
call and a read timeout far longer (a trickle is cut by the first, never the second), and
``server.max_sse_event_mb`` is small enough for a never-ending event to pass it quickly.
A call through either SDK gives an :class:`Observed`: what the client saw, the raw bytes,
and the request id that finds its usage row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anthropic
import openai

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic, Reply
from tests.fakes.bedrock_upstream import TEST_ACCESS_KEY, TEST_SECRET_KEY, FakeBedrock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.vertex_upstream import FakeGoogleToken, FakeVertex

from .catalogue import WIRES, ProviderWire

__all__ = ["MAX_SSE_EVENT_MB", "READ_S", "TOTAL_S", "FaultEnv", "Observed", "Surface", "fault_env"]

Surface = Literal["anthropic", "openai"]

TOTAL_S = 1.5
READ_S = 30.0
MAX_SSE_EVENT_MB = 0.05
HELLO = [{"role": "user", "content": "Hello"}]
PROVIDER_MODELS: dict[ProviderWire, str] = {
    "anthropic": "claude-sonnet-4-6",
    "openai": "gpt-4o",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "vertex": "claude-sonnet-4-5@20250929",
}


@dataclass
class Observed:
    """What a client saw of one call.

    ``status`` is the HTTP status; ``error`` what the SDK raised (None: it returned an
    answer); ``error_type`` the gateway's error type in the envelope, event or chunk (the
    Anthropic vocabulary: ``error.type`` on the Anthropic surface, ``error.code`` on the
    OpenAI surface); ``body`` the bytes the client got (the whole stream for a stream).
    """

    status: int
    content_type: str
    request_id: str
    body: bytes = field(repr=False)
    error: BaseException | None = None
    error_type: str | None = None
    message: str = ""
    answer: Any = field(default=None, repr=False)

    @property
    def tail(self) -> bytes:
        """The last bytes the client got (for failure messages)."""
        return self.body[-300:]


@dataclass
class FaultEnv:
    fakes: dict[ProviderWire, FakeAnthropic]
    gw: GatewayProcess
    calls: int = 0
    _log_seen: int = 0

    def enqueue(self, wire: ProviderWire, reply: Reply) -> None:
        self.fakes[wire].enqueue(reply)

    def call(self, surface: Surface, wire: ProviderWire, stream: bool, **extra: Any) -> Observed:
        """Call ``<wire>/m`` with the surface's SDK; ``extra`` goes to its ``create``."""
        self.calls += 1
        model = f"{wire}/m"
        if surface == "anthropic":
            return _call_anthropic(self.gw.url, model, stream, extra)
        return _call_openai(self.gw.url, model, stream, extra)

    def rows(self, request_id: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The usage rows of ``request_id``, once there is one (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self._query("SELECT * FROM usage WHERE request_id = ?", (request_id,))
            if rows or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def row_count(self) -> int:
        rows = self._query("SELECT COUNT(*) AS n FROM usage", ())
        return int(rows[0]["n"]) if rows else 0

    def _query(self, sql: str, args: tuple[object, ...]) -> list[dict[str, Any]]:
        if not self.gw.usage_db.exists():
            return []
        db = sqlite3.connect(self.gw.usage_db)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(sql, args)]
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def new_log(self) -> str:
        """The gateway's log since the last call of this method."""
        text = self.gw.log()
        out = text[self._log_seen :]
        self._log_seen = len(text)
        return out

    def fakes_idle(self) -> bool:
        return all(not f._messages_q for f in self.fakes.values())


@contextmanager
def fault_env(tmp: Path) -> Iterator[FaultEnv]:
    with ExitStack() as stack:
        fa = stack.enter_context(FakeAnthropic())
        fo = stack.enter_context(FakeOpenAI())
        fb = stack.enter_context(FakeBedrock())
        token = stack.enter_context(FakeGoogleToken())
        fv = stack.enter_context(FakeVertex(token_server=token))
        sa_file = token.write_service_account_file(tmp / "sa.json")
        timeouts = {"read_s": READ_S, "total_s": TOTAL_S}
        accounts: dict[ProviderWire, dict[str, Any]] = {
            "anthropic": {"type": "anthropic", "base_url": fa.url, "api_key": "sk-ant-up"},
            "openai": {"type": "openai", "base_url": fo.url + "/v1", "api_key": "sk-up"},
            "bedrock": {
                "type": "bedrock",
                "region": "us-east-1",
                "endpoint_url": fb.url,
                "access_key_id": TEST_ACCESS_KEY,
                "secret_access_key": TEST_SECRET_KEY,
            },
            "vertex": {
                "type": "vertex",
                "project": "fake-project",
                "region": "us-east5",
                "base_url": fv.url + "/v1",
                "credentials_file": str(sa_file),
            },
        }
        providers: dict[str, Any] = {
            wire: {**accounts[wire], "models": {"m": PROVIDER_MODELS[wire]}, "timeouts": timeouts}
            for wire in WIRES
        }
        config = base_config(tmp, providers, server={"max_sse_event_mb": MAX_SSE_EVENT_MB})
        gw = start_gateway(tmp, config, "--log-level", "info")
        stack.callback(gw.stop)
        yield FaultEnv({"anthropic": fa, "openai": fo, "bedrock": fb, "vertex": fv}, gw)


def _call_anthropic(url: str, model: str, stream: bool, extra: dict[str, Any]) -> Observed:
    client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=url, max_retries=0, timeout=30)
    with client:
        try:
            raw = client.messages.with_raw_response.create(
                model=model,
                max_tokens=16,
                messages=HELLO,  # type: ignore[arg-type]
                stream=stream,
                **extra,
            )
        except anthropic.APIStatusError as err:
            return _http_error(err, err.response.headers.get("request-id", ""))
        http = raw.http_response
        seen = Observed(
            http.status_code, http.headers.get("content-type", ""), http.headers["request-id"],
            http.read(),
        )  # fmt: skip
        try:
            answer = raw.parse()
            seen.answer = list(answer) if stream else answer
        except anthropic.APIStatusError as err:  # an ``event: error`` in the stream
            error = err.body.get("error") if isinstance(err.body, dict) else None
            seen.error, seen.message = err, err.message
            seen.error_type = str(error.get("type")) if isinstance(error, dict) else None
        except Exception as err:  # what the SDK raises on bytes it cannot read
            seen.error, seen.message = err, str(err)
        return seen


def _call_openai(url: str, model: str, stream: bool, extra: dict[str, Any]) -> Observed:
    client = openai.OpenAI(api_key=ALICE_KEY, base_url=url + "/v1", max_retries=0, timeout=30)
    with client:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=model,
                messages=HELLO,  # type: ignore[arg-type]
                stream=stream,
                **extra,
            )
        except openai.APIStatusError as err:
            return _http_error(err, err.response.headers.get("x-request-id", ""))
        http = raw.http_response
        seen = Observed(
            http.status_code, http.headers.get("content-type", ""),
            http.headers["x-request-id"], http.read(),
        )  # fmt: skip
        try:
            answer = raw.parse()
            seen.answer = list(answer) if stream else answer
        except openai.APIError as err:  # an error chunk in the stream
            body = err.body if isinstance(err.body, dict) else {}
            seen.error, seen.message = err, err.message
            seen.error_type = str(body.get("code")) if body.get("code") else None
        except Exception as err:
            seen.error, seen.message = err, str(err)
        return seen


def _http_error(err: anthropic.APIStatusError | openai.APIStatusError, rid: str) -> Observed:
    body = err.body if isinstance(err.body, dict) else {}
    if isinstance(err, anthropic.APIStatusError):
        error = body.get("error")
        error_type = error.get("type") if isinstance(error, dict) else None
    else:  # the SDK unwrapped the envelope; the gateway's Anthropic type is its ``code``
        error_type = body.get("code")
    return Observed(
        err.status_code,
        err.response.headers.get("content-type", ""),
        rid,
        err.response.content,
        err,
        str(error_type) if error_type else None,
        err.message,
    )
