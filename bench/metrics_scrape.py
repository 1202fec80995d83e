"""How fast ``GET /metrics`` answers while the gateway relays many streams (issue 12: "a
``/metrics`` scrape during a 1,000-stream load answers within 100 ms").

Starts ``llmrelay serve`` (this checkout's ``.venv``) with a ``mock`` account whose streams
send one event every ``--event-delay-ms``, opens ``--streams`` streams at once and keeps
them open, scrapes ``/metrics`` every ``--every-s`` seconds meanwhile, and prints the
scrape latencies (p50, p99, max), the series count and the gateway's RSS.

    .venv/bin/python bench/metrics_scrape.py --streams 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from latencies import summary

KEY = "sk-bench-metrics-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp: Path, delay_ms: float, keys: int) -> Path:
    lines = ["auth:", "  keys:"]
    lines += [f"    - {{name: k{i}, key: {KEY}{i:04d}}}" for i in range(keys)]
    lines += [
        "providers:",
        "  local:",
        "    type: mock",
        f"    stream_delay_s: {delay_ms / 1000}",
        "    models: {echo: echo}",
        "server: {max_connections: 20000}",
        f'usage: {{path: "{tmp}/usage.db"}}',
    ]
    path = tmp / "metrics-bench.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _stream(session: aiohttp.ClientSession, url: str, key: str, stop: asyncio.Event) -> None:
    body = {
        "model": "local/echo",
        "max_tokens": 4096,
        "stream": True,
        "messages": [{"role": "user", "content": "word " * 40}],
    }
    while not stop.is_set():
        async with session.post(
            url + "/v1/messages", json=body, headers={"x-api-key": key}
        ) as resp:
            async for _ in resp.content.iter_any():
                if stop.is_set():
                    return


async def _main(args: argparse.Namespace, url: str, pid: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(100):
            try:
                async with session.get(url + "/health") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        stop = asyncio.Event()
        streams = [
            asyncio.create_task(_stream(session, url, f"{KEY}{i % args.keys:04d}", stop))
            for i in range(args.streams)
        ]
        await asyncio.sleep(args.warmup_s)
        # The scrapes run in a process of their own: timed from this busy loop they would
        # include this client's own queueing delay behind 1,000 streams.
        cpu0, wall0 = _cpu_s(pid), time.monotonic()
        scraper = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--scrape",
            url,
            str(args.seconds),
            str(args.every_s),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await scraper.communicate()
        cpu = (_cpu_s(pid) - cpu0) / (time.monotonic() - wall0)
        took, health, series, text = _parse_scrapes(out.decode())
        in_flight = next(
            (ln for ln in text.splitlines() if ln.startswith("llmrelay_in_flight")), ""
        )
        rss = _rss_mb(pid)
        stop.set()
        for s in streams:
            s.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    print(f"GET /metrics: {summary(took, 'requests')}; {series} samples per scrape")
    print(f"GET /health:  {summary(health, 'requests')} (the event loop's queueing delay alone)")
    print(f"{in_flight}; gateway CPU {cpu:.0%} of a core; RSS {rss:.0f} MB")


def _scrape(url: str, seconds: float, every_s: float) -> None:
    """The scraping process: alternately GET /metrics and /health on one keep-alive
    connection for ``seconds``; prints each latency (ms), then the last /metrics body."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    end = time.monotonic() + seconds
    text = ""
    while time.monotonic() < end:
        for path in ("/metrics", "/health"):
            t = time.perf_counter()
            conn.request("GET", path)
            body = conn.getresponse().read()
            print(path, (time.perf_counter() - t) * 1000)
            if path == "/metrics":
                text = body.decode()
            time.sleep(every_s / 2)
    print("BODY")
    print(text)


def _parse_scrapes(out: str) -> tuple[list[float], list[float], int, str]:
    head, _, text = out.partition("BODY\n")
    took: list[float] = []
    health: list[float] = []
    for line in head.splitlines():
        path, ms = line.split()
        (took if path == "/metrics" else health).append(float(ms))
    series = sum(1 for ln in text.splitlines() if ln and not ln.startswith("#"))
    return took, health, series, text


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--scrape":
        _scrape(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--keys", type=int, default=50, help="distinct keys (series per metric)")
    p.add_argument("--event-delay-ms", type=float, default=50.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--every-s", type=float, default=0.5)
    p.add_argument("--warmup-s", type=float, default=5.0)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmrelay-metrics-"))
    port = _free_port()
    config = _config(tmp, args.event_delay_ms, args.keys)
    repo = Path(__file__).resolve().parent.parent
    with (tmp / "gateway.log").open("wb") as log:
        command = [str(repo / ".venv/bin/llmrelay"), "serve", "--config", str(config)]
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        asyncio.run(_main(args, f"http://127.0.0.1:{port}", proc.pid))
    finally:
        proc.terminate()
        proc.wait(20)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
