"""A passthrough answer that is all in with its headers is handed over whole (and then
relayed in one write); any other (streamed, compressed, an error) is read as it comes."""

from __future__ import annotations

import asyncio
import gzip

import aiohttp
from aiohttp import web

from llmrelay.providers.raw import RawRequest, forward

BODY = b'{"usage": {"input_tokens": 1, "output_tokens": 2}}'


async def _stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()  # no content-length: chunked
    await resp.prepare(request)
    await resp.write(BODY)
    await resp.write_eof()
    return resp


async def _json(_: web.Request) -> web.Response:
    return web.Response(body=BODY)


async def _error(_: web.Request) -> web.Response:
    return web.Response(status=400, body=BODY)


async def _gzip(_: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(BODY), headers={"content-encoding": "gzip"})


def _app() -> web.Application:
    app = web.Application()
    app.router.add_get("/json", _json)
    app.router.add_get("/error", _error)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/stream", _stream)
    return app


async def _arrived(paths: list[str]) -> list[bytes | None]:
    runner = web.AppRunner(_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    out: list[bytes | None] = []
    try:
        async with aiohttp.ClientSession() as session:
            for path in paths:
                raw = RawRequest("GET", path, "", [], b"")
                up = await forward(
                    session,
                    raw,
                    raw.url(f"http://127.0.0.1:{port}"),
                    [],
                    client_timeout=aiohttp.ClientTimeout(total=5),
                    account="a",
                )
                await asyncio.sleep(0.05)  # let the whole body come in
                out.append(up.arrived())
                if out[-1] is None:  # nothing was taken: the relay reads it all
                    assert b"".join([c async for c in up.iter_chunks()]) == BODY
                up.close()
    finally:
        await runner.cleanup()
    return out


def test_only_a_plain_answer_all_in_is_handed_over_whole() -> None:
    assert asyncio.run(_arrived(["json", "error", "gzip", "stream"])) == [BODY, None, None, None]
