"""The admin API reads its bodies within the server's bounds (``server.body_timeout_s``,
``max_request_body_mb``, ``max_json_depth``) where those are tighter than its own: a key
spec trickled past ``body_timeout_s`` used to hold its connection for a fixed 30 s."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.pipeline.inprocess import gateway_in_process

ADMIN_KEY = "adm-test-admin-0123456789abcdef"
SERVER = {"body_timeout_s": 0.5, "max_request_body_mb": 0.01, "max_json_depth": 8}


async def _post(url: str, head: bytes, body: bytes) -> tuple[int, dict[str, object]]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + body)
    # The answer's own framing: after a 408 the server may linger for the rest of the body.
    head_in = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    length = int(head_in.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    data = await asyncio.wait_for(reader.readexactly(length), 20)
    writer.close()
    return int(head_in.split(b" ", 2)[1]), json.loads(data)


def _head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\nx-api-key: {ADMIN_KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
    ).encode()


def test_an_admin_body_that_does_not_arrive_within_body_timeout_s_is_a_408(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path, server=SERVER, admin={"key": ADMIN_KEY}) as gw:
            for path in ("/admin/keys", "/admin/keys/vk_1/rotate"):
                status, body = await _post(gw.url, _head(path, 100), b'{"name": ')
                assert status == 408, body
                error = body["error"]
                assert isinstance(error, dict)
                assert "server.body_timeout_s" in error["message"]

    asyncio.run(main())


def test_admin_bodies_keep_the_servers_size_and_depth_limits(tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path, server=SERVER, admin={"key": ADMIN_KEY}) as gw:
            big = json.dumps({"name": "k", "team": "t" * 20_000}).encode()
            status, _ = await _post(gw.url, _head("/admin/keys", len(big)), big)
            assert status == 413
            deep = b'{"name": "k", "limits": ' + b"[" * 20 + b"]" * 20 + b"}"
            status, body = await _post(gw.url, _head("/admin/keys", len(deep)), deep)
            assert status == 400, body

    asyncio.run(main())
