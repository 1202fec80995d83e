"""A Bedrock InvokeModel upstream for the benchmark: the harness upstream's own Anthropic
payloads (``../shared/bench/upstream.py``), re-framed as AWS event-stream, so llmrelay's
Bedrock provider (SigV4 signing, event-stream decode, SSE re-encode) can be measured next to
its Anthropic passthrough. It does not check signatures: it is a load target, not a test fake
(tests/fakes/bedrock_upstream.py is the strict one).

    python bench/bedrock_upstream.py --port 8901 [--stream-events 50] [--stream-delay-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import zlib
from pathlib import Path

from aiohttp import web

_DEFAULT_HARNESS = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"
HARNESS = Path(os.environ.get("LLMRELAY_BENCH_HARNESS", _DEFAULT_HARNESS))
sys.path.insert(0, str(HARNESS))
import upstream as harness  # noqa: E402  (the harness's payloads, so both targets get the same)


def frame(payload: bytes) -> bytes:
    """One event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    headers = b"".join(
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
        for name, value in (
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        )
    )
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def frames(model: str, n: int) -> list[bytes]:
    out = []
    for sse in harness.anthropic_events(model, n):
        data = next(line[6:] for line in sse.split(b"\n") if line.startswith(b"data: "))
        out.append(frame(json.dumps({"bytes": base64.b64encode(data).decode()}).encode()))
    return out


def make_app(n: int, delay_s: float) -> web.Application:
    cache: dict[str, list[bytes]] = {}

    async def invoke(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(
            body=harness.anthropic_json(request.match_info["model"]),
            content_type="application/json",
        )

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        model = request.match_info["model"]
        events = cache.get(model) or cache.setdefault(model, frames(model, n))
        resp = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
        await resp.prepare(request)
        for i, f in enumerate(events):
            if i and delay_s:
                await asyncio.sleep(delay_s)
            await resp.write(f)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/model/{model}/invoke", invoke)
    app.router.add_post("/model/{model}/invoke-with-response-stream", stream)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--stream-events", type=int, default=50)
    ap.add_argument("--stream-delay-ms", type=float, default=2.0)
    a = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        make_app(a.stream_events, a.stream_delay_ms / 1000),
        host="127.0.0.1",
        port=a.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
