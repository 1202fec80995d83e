"""Microbenchmark: the CPU one traced call costs, through the tracing observer and the span
pipeline behind it, exporting over OTLP/HTTP to a local sink at sampling 1.0.

Each call is what the pipeline does with a traced call of one attempt: ``call_started``
(the server span, continuing a client ``traceparent``), the capture, ``attempt_started``,
``upstream_headers``, ``attempt_ended``, a whole JSON answer, ``call_ended``. The sink runs
in another process (its CPU is not counted); this process's CPU, the export thread's
encoding and posting included, is, after a flush. Figures: the best round's CPU µs per call.

    PYTHONPATH=$PWD .venv/bin/python bench/tracing_micro.py
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import textwrap
import time
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from llmrelay.config import Settings
from llmrelay.core.usage import Usage
from llmrelay.obs.tracing import Tracing
from llmrelay.pipeline.call import Call
from llmrelay.routing.executor import AttemptRecord
from llmrelay.routing.table import Route
from llmrelay.stores.usage import UsageRecord

SINK = textwrap.dedent(
    """
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
        def log_message(self, *a): pass
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    print(s.server_address[1], flush=True)
    s.serve_forever()
    """
)

ANSWER = orjson.dumps(
    {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Hello! How can I help?"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 9},
    }
)


class _Provider:
    account = "anthropic"
    wire = "anthropic"


class _Request:
    """What the observer reads of an aiohttp request (a mocked one costs 1 ms to make)."""

    method = "POST"
    path = "/v1/messages"
    headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "content-type": "application/json",
                "x-api-key": "sk-bench-alice-0123456789",
            }
        )
    )


class _Parts:
    observers: tuple[Any, ...] = ()


def settings(port: int, content: bool) -> Settings:
    return Settings.model_validate(
        {
            "auth": {"keys": [{"name": "alice", "key": "sk-bench-alice-0123456789"}]},
            "providers": {
                "anthropic": {
                    "type": "anthropic",
                    "api_key": "sk-x",
                    "base_url": "https://api.anthropic.com",
                    "models": {"claude": "claude-sonnet-4-6"},
                }
            },
            "observability": {
                "tracing": {
                    "endpoint": f"http://127.0.0.1:{port}/v1/traces",
                    "capture_content": content,
                    "max_queue_size": 100_000,
                }
            },
        }
    )


def one_call(tracing: Tracing, route: Route, body: dict[str, Any]) -> None:
    request = _Request()
    record = UsageRecord(0.0, "req_1", "alice", "anthropic/claude", "", "", "messages", False, 499)
    call = Call(_Parts(), request, "anthropic", record, Usage(), time.perf_counter())  # type: ignore[arg-type]
    call.caller = object()  # type: ignore[assignment]
    tracing.call_started(call)
    capture = tracing.capture(call, None)
    call.body = body
    call.routed = "anthropic/claude"
    record.provider, record.provider_model = "anthropic", "claude-sonnet-4-6"
    trace = call.trace
    assert trace is not None and capture is not None
    trace.attempt_started(route)
    trace.upstream_headers()
    attempt = AttemptRecord("anthropic/claude", 200, None, 0.2, account="anthropic")
    call.attempts.append(attempt)
    trace.attempt_ended(attempt)
    capture.whole(ANSWER)
    record.status, record.input_tokens, record.output_tokens = 200, 12, 9
    record.cost_usd, record.latency_s = 0.0002, 0.2
    tracing.call_ended(call)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--content", action="store_true", help="capture_content: true")
    args = parser.parse_args()
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        tracing = Tracing(settings(port, args.content), {})
        route = Route("anthropic/claude", _Provider(), "claude-sonnet-4-6")  # type: ignore[arg-type]
        body = {"model": "anthropic/claude", "max_tokens": 1024, "messages": [
            {"role": "user", "content": "Hello there, how are you?"}]}  # fmt: skip
        for _ in range(500):
            one_call(tracing, route, body)
        tracing._batches.force_flush()
        best = float("inf")
        for _ in range(args.rounds):
            cpu = time.process_time()
            for _ in range(args.n):
                one_call(tracing, route, body)
            tracing._batches.force_flush()
            best = min(best, time.process_time() - cpu)
        print(f"traced call, 1 attempt: {best / args.n * 1e6:6.1f} us CPU (export included)")
        asyncio.run(tracing.aclose())
    finally:
        sink.kill()


if __name__ == "__main__":
    main()
