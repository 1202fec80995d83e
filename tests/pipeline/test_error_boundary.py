"""One error boundary: a bug anywhere in a call is a 500 ``api_error`` in the caller's
envelope with the request id, logged once with its traceback, and its usage row says 500
(never 499); a stream already started ends with the surface's error event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from llmrelay.providers.base import ProviderRequest
from llmrelay.providers.mock.client import MockResponse
from tests.conftest import ALICE_KEY
from tests.pipeline.inprocess import InProcess, gateway_in_process

HELLO = [{"role": "user", "content": "hi"}]


class Boom(RuntimeError):
    pass


async def _raises(request: ProviderRequest) -> Any:
    raise Boom("a bug in a provider client")


class _BrokenStream(MockResponse):
    async def iter_chunks(self) -> AsyncIterator[bytes]:
        yield b'event: message_start\ndata: {"type":"message_start","message":{"id":"m",'
        yield (
            b'"type":"message","role":"assistant","model":"echo","content":[],'
            b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,'
            b'"output_tokens":1}}}\n\n'
        )
        raise Boom("a bug mid-stream")


async def _breaks_mid_stream(request: ProviderRequest) -> Any:
    return _BrokenStream(200, {"content-type": "text/event-stream"}, events=[])


def _break(gw: InProcess, send: Any) -> None:
    provider = gw.gateway.routes.get("local/echo")
    assert provider is not None
    provider.provider.send = send  # type: ignore[method-assign]


def _internal_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "internal error"]


def test_a_bug_is_a_500_in_anthropics_envelope(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path) as gw:
            _break(gw, _raises)
            client = anthropic.AsyncAnthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
            with pytest.raises(anthropic.InternalServerError) as e:
                await client.messages.create(model="local/echo", max_tokens=5, messages=HELLO)
            body = e.value.body
            assert isinstance(body, dict)
            assert body["type"] == "error"
            assert body["error"]["type"] == "api_error"
            rid = e.value.response.headers["request-id"]
            assert rid in body["error"]["message"]
            assert body["request_id"] == rid
            [call] = gw.calls.ended
            assert (call.record.status, call.record.error_type) == (500, "api_error")
            await client.close()

    with caplog.at_level(logging.ERROR, logger="llmrelay"):
        asyncio.run(main())
    [logged] = _internal_errors(caplog)
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], Boom)


def test_a_bug_is_a_500_in_openais_envelope(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path) as gw:
            _break(gw, _raises)
            client = openai.AsyncOpenAI(api_key=ALICE_KEY, base_url=gw.url + "/v1", max_retries=0)
            with pytest.raises(openai.InternalServerError) as e:
                await client.chat.completions.create(model="local/echo", messages=HELLO)  # type: ignore[arg-type]
            body = e.value.body
            assert isinstance(body, dict)
            assert body["type"] == "server_error"  # OpenAI's name for a 500
            assert e.value.response.headers["x-request-id"] in body["message"]
            [call] = gw.calls.ended
            assert (call.record.status, call.record.error_type) == (500, "api_error")
            await client.close()

    with caplog.at_level(logging.ERROR, logger="llmrelay"):
        asyncio.run(main())
    assert len(_internal_errors(caplog)) == 1


def test_a_bug_mid_stream_ends_it_with_an_error_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path) as gw:
            _break(gw, _breaks_mid_stream)
            client = anthropic.AsyncAnthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
            seen: list[str] = []
            with pytest.raises(anthropic.APIStatusError) as e:
                async with client.messages.stream(
                    model="local/echo", max_tokens=5, messages=HELLO
                ) as stream:
                    async for event in stream:
                        seen.append(event.type)
            assert seen == ["message_start"]
            assert "failed to handle this request" in str(e.value)
            [call] = gw.calls.ended
            assert (call.record.status, call.record.error_type) == (500, "api_error")
            assert call.record.input_tokens == 3
            await client.close()

    with caplog.at_level(logging.ERROR, logger="llmrelay"):
        asyncio.run(main())
    assert len(_internal_errors(caplog)) == 1


def test_a_bug_mid_translated_stream_ends_with_an_error_chunk_and_done(tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path) as gw:
            _break(gw, _breaks_mid_stream)
            client = openai.AsyncOpenAI(api_key=ALICE_KEY, base_url=gw.url + "/v1", max_retries=0)
            raw = await client.chat.completions.with_raw_response.create(
                model="local/echo",
                messages=HELLO,  # type: ignore[arg-type]
                stream=True,
            )
            text = (await raw.http_response.aread()).decode()
            assert '"error"' in text and "failed to handle this request" in text
            assert text.endswith("data: [DONE]\n\n")
            [call] = gw.calls.ended
            assert call.record.status == 500
            await client.close()

    asyncio.run(main())


def test_a_bug_listing_models_is_a_json_500(tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway_in_process(tmp_path) as gw:

            def names() -> Any:
                raise Boom("router bug")

            gw.gateway.router.names = names  # type: ignore[method-assign]
            client = anthropic.AsyncAnthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
            with pytest.raises(anthropic.InternalServerError) as e:
                await client.models.list()
            assert isinstance(e.value.body, dict) and e.value.body["error"]["type"] == "api_error"
            await client.close()

    asyncio.run(main())
