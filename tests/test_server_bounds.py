"""The server's bounds against slow, numerous and malformed clients, over real sockets to a
real ``llmrelay serve`` (docs/limits.md): header timeout, backlog, connection limit,
parser errors that never echo a key, and ``read_body``'s body timeout and size limit."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web

from llmrelay.errors import GatewayError
from llmrelay.pipeline.body import read_body

from .conftest import ALICE_KEY, GatewayProcess, base_config

MOCK = {"local": {"type": "mock", "models": {"echo": "echo"}}}
Factory = Callable[..., GatewayProcess]


def _port(gw: GatewayProcess) -> int:
    return int(gw.url.rsplit(":", 1)[1])


def _config(tmp_path: Path, **server: Any) -> dict[str, Any]:
    return base_config(tmp_path, MOCK, server=server)


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes; a reset counts as closed."""
    data = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def _split(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def _sdk_call(gw: GatewayProcess) -> str:
    with anthropic.Anthropic(
        base_url=gw.url, api_key=ALICE_KEY, max_retries=0, timeout=30
    ) as client:
        msg = client.messages.create(
            model="local/echo", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    block = msg.content[0]
    assert block.type == "text"
    return block.text


# -- header timeout -------------------------------------------------------------------------


async def _trickle(port: int, give_up_s: float) -> tuple[float, bytes]:
    """Open a connection and send a request's headers one byte every 0.2 s, forever; the
    seconds until the server closes it, and what it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-slow: ")

    async def feed() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(0.2)
                writer.write(b"a")
                await writer.drain()

    feeder = asyncio.create_task(feed())
    try:
        data = await asyncio.wait_for(_read_until_closed(reader), give_up_s)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await _close(writer)
    return loop.time() - started, data


def test_trickling_headers_are_cut_at_header_timeout_while_calls_go_on(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    gw = gateway_factory(_config(tmp_path, header_timeout_s=1))
    port = _port(gw)

    async def scenario() -> tuple[list[tuple[float, bytes]], str]:
        trickles = [asyncio.create_task(_trickle(port, give_up_s=20)) for _ in range(200)]
        await asyncio.sleep(0.3)  # the trickles are under way
        text = await asyncio.to_thread(_sdk_call, gw)
        return await asyncio.gather(*trickles), text

    results, text = asyncio.run(scenario())
    assert text  # a normal call is answered while 200 connections trickle
    for took, data in results:
        # Cut at the header timeout (1 s), with generous slack for a loaded machine; on
        # aiohttp's defaults they were held for the keep-alive timeout (75 s).
        assert took < 1 + 5
        if data:  # the 408 can be lost if the client's byte crosses the close
            status, headers, body = _split(data)
            assert status == 408
            assert headers["connection"] == "close"
            assert orjson.loads(body)["error"]["type"] == "timeout_error"
    assert sum(1 for _, data in results if data) >= len(results) // 2


def test_header_clock_on_a_kept_alive_connection_starts_at_the_next_requests_first_byte(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    gw = gateway_factory(_config(tmp_path, header_timeout_s=1))

    async def scenario() -> tuple[bytes, bytes, float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(gw))
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        first = await reader.readuntil(b'"ok"}')
        await asyncio.sleep(2.5)  # idle longer than the header timeout: kept alive
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        second = await reader.readuntil(b'"ok"}')
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n")  # headers never finished
        started = asyncio.get_running_loop().time()
        third = await asyncio.wait_for(_read_until_closed(reader), 20)
        await _close(writer)
        return first, second, asyncio.get_running_loop().time() - started, third

    first, second, took, third = asyncio.run(scenario())
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
    assert took < 1 + 5
    assert third.startswith(b"HTTP/1.1 408")


def test_a_connection_that_sends_nothing_is_closed_at_header_timeout(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    gw = gateway_factory(_config(tmp_path, header_timeout_s=1))

    async def scenario() -> tuple[float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(gw))
        started = asyncio.get_running_loop().time()
        data = await asyncio.wait_for(_read_until_closed(reader), 20)
        await _close(writer)
        return asyncio.get_running_loop().time() - started, data

    took, data = asyncio.run(scenario())
    assert took < 1 + 5
    assert data == b""  # nothing was asked, nothing is answered


# -- backlog --------------------------------------------------------------------------------


def _listen_backlog(port: int) -> int:
    """The listen queue length the kernel holds for ``port`` (``ss``'s Send-Q)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


def _syn_retransmits(sock: socket.socket) -> int:
    """``tcpi_total_retrans`` of a client socket: a SYN the server's full queue dropped
    is retransmitted after 1 s, and counted here."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    (total_retrans,) = struct.unpack_from("I", info, 100)
    return int(total_retrans)


def test_a_burst_of_1000_connections_is_queued_and_answered(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    gw = gateway_factory(_config(tmp_path))
    port = _port(gw)
    assert _listen_backlog(port) == 2048  # server.backlog's default

    async def one() -> tuple[bytes, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        retrans = _syn_retransmits(writer.get_extra_info("socket"))
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = await _read_until_closed(reader)
        await _close(writer)
        return data, retrans

    async def burst() -> list[tuple[bytes, int]]:
        return await asyncio.gather(*(one() for _ in range(1000)))

    results = asyncio.run(burst())
    assert all(data.startswith(b"HTTP/1.1 200") for data, _ in results)
    # aiohttp's default backlog (128) overflowed here: hundreds of SYNs dropped and retried.
    assert sum(retrans for _, retrans in results) == 0


# -- connection limit -----------------------------------------------------------------------


def test_connections_beyond_max_connections_get_a_503_and_one_log_line(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    gw = gateway_factory(_config(tmp_path, max_connections=5, header_timeout_s=30))
    port = _port(gw)
    request = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"

    async def scenario() -> tuple[list[bytes], bytes]:
        held = []
        for _ in range(5):  # five kept-alive connections: the limit
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await reader.readuntil(b'"ok"}')
            held.append((reader, writer))
        refused = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            refused.append(await asyncio.wait_for(_read_until_closed(reader), 20))
            await _close(writer)
        await _close(held.pop()[1])  # one leaves: the next connection is served
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            answer = await asyncio.wait_for(_read_until_closed(reader), 20)
            await _close(writer)
            if answer.startswith(b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.1)
        for _, writer in held:
            await _close(writer)
        return refused, answer

    refused, answer = asyncio.run(scenario())
    for raw in refused:
        status, headers, body = _split(raw)
        assert status == 503
        assert headers["connection"] == "close"
        assert headers["content-type"].startswith("application/json")
        assert orjson.loads(body)["error"]["type"] == "overloaded_error"
    assert answer.startswith(b"HTTP/1.1 200")
    lines = [line for line in gw.log().splitlines() if "max_connections reached" in line]
    assert len(lines) == 1  # rate-limited


def test_connections_beyond_twice_max_connections_are_closed_unanswered(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    gw = gateway_factory(_config(tmp_path, max_connections=1, header_timeout_s=30))
    port = _port(gw)

    async def scenario() -> tuple[bytes, bytes]:
        served = await asyncio.open_connection("127.0.0.1", port)
        served[1].write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        await served[0].readuntil(b'"ok"}')
        refusing = await asyncio.open_connection("127.0.0.1", port)  # over the limit, silent
        await asyncio.sleep(0.2)
        dropped = await asyncio.open_connection("127.0.0.1", port)  # over twice the limit
        nothing = await asyncio.wait_for(_read_until_closed(dropped[0]), 20)
        refusing[1].write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        refused = await asyncio.wait_for(_read_until_closed(refusing[0]), 20)
        for _, writer in (served, refusing, dropped):
            await _close(writer)
        return nothing, refused

    nothing, refused = asyncio.run(scenario())
    assert nothing == b""
    assert refused.startswith(b"HTTP/1.1 503")


# -- parser errors --------------------------------------------------------------------------


@pytest.mark.parametrize("parser", ["c", "python"])
def test_a_malformed_header_carrying_the_key_is_never_echoed_or_logged(
    gateway_factory: Factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    parser: str,
) -> None:
    if parser == "python":
        monkeypatch.setenv("AIOHTTP_NO_EXTENSIONS", "1")
    gw = gateway_factory(_config(tmp_path))
    key = ALICE_KEY.encode()
    lines = [
        b"x-api-key: " + key + b"\r",  # a key read from a CRLF file
        b"x-api-key: " + key + b"\x00",
        b"x-api-key: " + key + b"\x01",
        b"authorization: Bearer " + key + b"\x7f",
        b"x-api-key: " + key + b"a" * 70_000,  # longer than a header may be
    ]
    for line in lines:
        with socket.create_connection(("127.0.0.1", _port(gw)), timeout=10) as s:
            s.sendall(
                b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n"
                + line
                + b"\r\ncontent-length: 2\r\n\r\n{}"
            )
            raw = b""
            with contextlib.suppress(ConnectionError):
                while chunk := s.recv(65536):
                    raw += chunk
        status, headers, body = _split(raw)
        assert status == 400
        assert headers["content-type"].startswith("application/json")
        error = orjson.loads(body)
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["message"].startswith("malformed HTTP request")
        assert key not in raw
    time.sleep(0.2)
    log = gw.log()
    assert ALICE_KEY not in log
    assert "Traceback" not in log
    warnings = [line for line in log.splitlines() if "malformed HTTP request" in line]
    assert len(warnings) == 1  # one line, then rate-limited
    assert orjson.loads(warnings[0])["level"] == "warning"


@pytest.mark.parametrize("parser", ["c", "python"])
def test_a_body_that_does_not_decode_is_answered_and_logged_without_a_traceback(
    gateway_factory: Factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    parser: str,
) -> None:
    if parser == "python":
        monkeypatch.setenv("AIOHTTP_NO_EXTENSIONS", "1")
    gw = gateway_factory(_config(tmp_path))
    bad = b"\x1f\x8bnot gzip at all"
    head = f"host: x\r\ncontent-encoding: gzip\r\ncontent-length: {len(bad)}\r\n"
    requests = [
        # A call reads the body: a 400 in its envelope.
        (f"POST /v1/messages HTTP/1.1\r\nx-api-key: {ALICE_KEY}\r\n{head}\r\n", 400),
        # Nobody reads it: aiohttp does after the answer, to find the next request.
        (f"GET /health HTTP/1.1\r\n{head}\r\n", 200),
    ]
    for request, expected in requests:
        with socket.create_connection(("127.0.0.1", _port(gw)), timeout=10) as s:
            s.sendall(request.encode() + bad)
            raw = b""
            with contextlib.suppress(ConnectionError):
                while chunk := s.recv(65536):
                    raw += chunk
        status, headers, body = _split(raw)
        assert status == expected, raw
        assert headers["content-type"].startswith("application/json")
        # The connection cannot carry another request: the answer says so.
        assert headers["connection"] == "close"
        orjson.loads(body)
    time.sleep(0.2)
    log = gw.log()
    assert "Traceback" not in log
    assert "Unhandled exception" not in log
    warnings = [line for line in log.splitlines() if "malformed HTTP request" in line]
    assert len(warnings) == 1  # one line, then rate-limited
    assert orjson.loads(warnings[0])["reason"] == "invalid body framing"


@pytest.mark.parametrize(
    "request_line",
    [b"OPTIONS * HTTP/1.1", b"CONNECT example.com:443 HTTP/1.1", b"GET http://x HTTP/1.1"],
)
def test_a_request_target_no_route_can_match_is_a_404_in_the_envelope(
    gateway_factory: Factory, tmp_path: Path, request_line: bytes
) -> None:
    # The catch-all route matches paths starting with "/": these reached aiohttp's own
    # text/plain "404: Not Found" (found by the ingress fuzz).
    gw = gateway_factory(_config(tmp_path))
    with socket.create_connection(("127.0.0.1", _port(gw)), timeout=10) as s:
        s.sendall(request_line + b"\r\nhost: x\r\nconnection: close\r\n\r\n")
        raw = b""
        with contextlib.suppress(ConnectionError):
            while chunk := s.recv(65536):
                raw += chunk
    status, headers, body = _split(raw)
    assert status == 404
    assert headers["content-type"].startswith("application/json")
    error = orjson.loads(body)
    assert (error["type"], error["error"]["type"]) == ("error", "not_found_error")


# -- read_body ------------------------------------------------------------------------------


async def _body_server(max_bytes: int, timeout_s: float) -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.Response:
        try:
            body = await read_body(request, max_bytes, timeout_s)
        except GatewayError as err:
            return web.json_response({"error": err.error_type}, status=err.status)
        again = await request.read()
        return web.json_response({"size": len(body), "same": again == body})

    app = web.Application(client_max_size=4 * max_bytes)
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def _exchange(port: int, head: bytes, body_parts: list[bytes], gap_s: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)

    async def feed() -> None:
        with contextlib.suppress(ConnectionError):
            for part in body_parts:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(gap_s)

    feeder = asyncio.create_task(feed())
    try:
        return await asyncio.wait_for(reader.readuntil(b"}"), 20)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await _close(writer)


def _post(length: int | None) -> bytes:
    framing = f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
    return f"POST / HTTP/1.1\r\nhost: x\r\n{framing}\r\n\r\n".encode()


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_read_body_bounds_time_and_size() -> None:
    async def scenario() -> dict[str, Any]:
        runner, port = await _body_server(max_bytes=1000, timeout_s=1.0)
        loop = asyncio.get_running_loop()
        out: dict[str, Any] = {}
        try:
            out["whole"] = await _exchange(port, _post(10), [b"0123456789"], 0)
            out["chunked"] = await _exchange(
                port, _post(None), [_chunked(b"abc"), _chunked(b"def"), b"0\r\n\r\n"], 0
            )
            started = loop.time()
            out["trickle"] = await _exchange(port, _post(100), [b"x"] * 100, 0.2)
            out["trickle_s"] = loop.time() - started
            started = loop.time()
            out["short"] = await _exchange(port, _post(100), [b"x" * 10], 0)
            out["short_s"] = loop.time() - started
            out["large"] = await _exchange(port, _post(5000), [], 0)
            out["large_chunked"] = await _exchange(
                port, _post(None), [_chunked(b"x" * 600), _chunked(b"x" * 600)], 0
            )
        finally:
            await runner.cleanup()
        return out

    out = asyncio.run(scenario())

    def answer(raw: bytes) -> tuple[int, Any]:
        status, _, body = _split(raw)
        return status, orjson.loads(body)

    assert answer(out["whole"]) == (200, {"size": 10, "same": True})
    assert answer(out["chunked"]) == (200, {"size": 6, "same": True})
    assert answer(out["trickle"]) == (408, {"error": "timeout_error"})
    assert out["trickle_s"] < 1 + 5
    assert answer(out["short"]) == (408, {"error": "timeout_error"})
    assert out["short_s"] < 1 + 5
    assert answer(out["large"]) == (413, {"error": "request_too_large"})
    assert answer(out["large_chunked"]) == (413, {"error": "request_too_large"})
