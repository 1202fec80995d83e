"""Open N connections to a gateway at once, each sending one /v1/messages call to the mock
or bench upstream, and count the answers (bench/run_workers.sh: 1,000 at once).

    python bench/burst.py URL KEY MODEL [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter


async def one(host: str, port: int, body: bytes, key: str) -> str:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
        head = (
            f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nx-api-key: {key}\r\n"
            f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        writer.write(head + body)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 60)
        await asyncio.wait_for(reader.read(), 60)
        writer.close()
        return status.split()[1].decode() if status else "no status"
    except Exception as err:  # counted by kind
        return type(err).__name__


async def main() -> None:
    url, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    host, _, port = url.removeprefix("http://").partition(":")
    body = json.dumps(
        {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    start = time.perf_counter()
    results = await asyncio.gather(*(one(host, int(port), body, key) for _ in range(n)))
    took = time.perf_counter() - start
    answers = dict(Counter(results))
    print(json.dumps({"connections": n, "answers": answers, "seconds": round(took, 2)}))


if __name__ == "__main__":
    asyncio.run(main())
