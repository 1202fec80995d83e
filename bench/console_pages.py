"""Console page render times on a usage table of ``--rows`` rows (issue 15: "pages render in
under 300 ms on a usage table of 1 million rows").

Fills a SQLite file with ``--rows`` usage rows over ``--days`` days ending now (a recursive
CTE, in the database), migrates it (0004 fills the hourly rollup), starts ``llmrelay serve``
on it with 40 virtual keys, signs in to the console and times each page over HTTP, the
whole answer from request to last byte (``--runs`` times each; p50 and max).

    .venv/bin/python bench/console_pages.py --rows 1000000
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from latencies import summary

from llmrelay.stores.schema import upgrade

ADMIN = "sk-admin-bench-0123456789abcdef"
PAGES = (
    "/ui/?range=24h",
    "/ui/?range=7d",
    "/ui/?range=30d",
    "/ui/?range=30d&by=model",
    "/ui/requests",
    "/ui/requests?status=5xx",
    "/ui/requests?key=key-7",
    "/ui/keys",
    "/ui/teams",
    "/ui/models",
)


def fill(path: Path, rows: int, days: int) -> None:
    url = f"sqlite:///{path}"
    upgrade(url, "0003")
    start, step = time.time() - days * 86400, days * 86400 / rows
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO usage (ts, request_id, key_name, key_id, team, model, provider,"
            " provider_model, endpoint, stream, status, input_tokens, output_tokens,"
            " cache_creation_input_tokens, cache_read_input_tokens, latency_s, cost_usd)"
            " SELECT ? + i * ?, 'req_' || i, 'key-' || (i / 7 % 40), 'vk_' || (i / 7 % 40),"
            " 'team-' || (i / 7 % 5), 'model-' || (i % 3), 'acct-' || (i % 3), 'pm', 'messages',"
            " 0, CASE WHEN i % 50 = 0 THEN 529 ELSE 200 END, 100 + i % 900, 20 + i % 300, 0,"
            " i % 4 * 100, 0.5 + (i % 10) * 0.1, (i % 100) * 0.0001 FROM n",
            (rows - 1, start, step),
        )
    db.close()
    upgrade(url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="console-bench-"))
    db = tmp / "usage.db"
    began = time.perf_counter()
    fill(db, args.rows, args.days)
    print(f"filled and migrated {args.rows:,} rows in {time.perf_counter() - began:.1f} s")
    port = free_port()
    config = {
        "auth": {"keys": [{"name": "bench", "key": "sk-bench-0123456789"}]},
        "providers": {"mock": {"type": "mock", "models": {"echo": "echo"}}},
        "usage": {"path": str(db)},
        "admin": {"key": ADMIN},
        "teams": {f"team-{i}": {"budget": {"usd": 1000, "period": "month"}} for i in range(5)},
    }
    (tmp / "llmrelay.yaml").write_text(json.dumps(config))
    log = (tmp / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmrelay",
            "serve",
            "--config",
            str(tmp / "llmrelay.yaml"),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        for i in range(40):
            req = urllib.request.Request(
                base + "/admin/keys",
                data=json.dumps({"name": f"key-{i}", "budget_usd": 100}).encode(),
                headers={"authorization": f"Bearer {ADMIN}", "content-type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=10).close()
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        form = opener.open(base + "/ui/login", timeout=10).read().decode()
        token = re.search(r'name="login" value="([^"]+)"', form)
        assert token is not None
        body = urllib.parse.urlencode({"login": token.group(1), "key": ADMIN}).encode()
        opener.open(base + "/ui/login", data=body, timeout=10).close()
        print(f"console pages on {args.rows:,} usage rows over {args.days} days (SQLite):")
        for path in PAGES:
            took = []
            for _ in range(args.runs):
                start = time.perf_counter()
                with opener.open(base + path, timeout=30) as resp:
                    resp.read()
                    assert resp.status == 200 and "/ui/login" not in resp.url, path
                took.append((time.perf_counter() - start) * 1000)
            print(f"  {path:28s} {summary(took, 'renders')}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
