"""What ``app.py`` wires around the surfaces: every route's ``Expect`` handling, and the
envelope of answers no surface gives (an unknown path)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import ALICE_KEY
from tests.pipeline.inprocess import gateway_in_process

BODY = b'{"model":"local/echo","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'


async def _exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    raw = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return raw


def _request(method: str, path: str, expect: str, body: bytes = b"") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nhost: x\r\nx-api-key: {ALICE_KEY}\r\nexpect: {expect}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize(
    ("method", "path", "surface"),
    [
        ("POST", "/v1/messages", "anthropic"),
        ("POST", "/openai/v1/chat/completions", "openai"),
        ("GET", "/v1/models", "openai"),
        ("GET", "/health", "anthropic"),
        ("GET", "/nowhere", "anthropic"),
    ],
)
def test_an_unknown_expectation_is_a_417_in_the_paths_envelope(
    tmp_path: Path, method: str, path: str, surface: str
) -> None:
    async def main() -> bytes:
        async with gateway_in_process(tmp_path) as gw:
            return await _exchange(gw.url, _request(method, path, "200-ok-" + "x" * 100))

    raw = asyncio.run(main())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 417"), raw
    assert b"request-id: req_" in head.lower()
    assert b"x" * 100 not in raw  # the header is not echoed
    error = json.loads(body)
    if surface == "openai":
        assert error["error"]["type"] == "invalid_request_error"
    else:
        assert (error["type"], error["error"]["type"]) == ("error", "invalid_request_error")


def test_100_continue_is_answered_before_the_call(tmp_path: Path) -> None:
    async def main() -> bytes:
        async with gateway_in_process(tmp_path) as gw:
            return await _exchange(gw.url, _request("POST", "/v1/messages", "100-continue", BODY))

    raw = asyncio.run(main())
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), raw[:200]
    assert b"mock echo: hi" in raw
