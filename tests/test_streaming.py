"""Streams are relayed unbuffered, concurrently, and closed upstream when the client leaves."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import anthropic
import pytest

from tests.conftest import ALICE_KEY
from tests.fakes.anthropic_upstream import fixture_reply, sse_reply
from tests.gateway_env import Env, make_env

MODEL = "anthropic/claude-3-5"
WIRE = Path(__file__).parent / "wire" / "anthropic"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path)


def open_stream(env: Env) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    u = urlsplit(env.gw.url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=10)
    body = json.dumps(
        {
            "model": MODEL,
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    conn.request(
        "POST", "/v1/messages", body, {"x-api-key": ALICE_KEY, "content-type": "application/json"}
    )
    return conn, conn.getresponse()


def read_events(resp: http.client.HTTPResponse, n: int) -> list[str]:
    """Read until ``n`` complete SSE events have arrived."""
    buf = b""
    while buf.count(b"\n\n") < n:
        chunk = resp.read1(65536)
        if not chunk:
            break
        buf += chunk
    return [e for e in buf.decode().split("\n\n") if e][:n]


def test_events_reach_client_while_provider_is_still_streaming(env: Env) -> None:
    # The provider sends three events and then holds the stream open: the client must see
    # all three without waiting for the end (nothing is buffered).
    text = (WIRE / "text_stream.sse").read_text()
    first_three = "\n\n".join(text.split("\n\n")[:3]) + "\n\n"
    env.fake.enqueue(sse_reply(first_three, hang_after=True))
    conn, resp = open_stream(env)
    try:
        assert resp.status == 200
        assert resp.getheader("content-type", "").startswith("text/event-stream")
        assert resp.getheader("request-id", "").startswith("req_")
        events = read_events(resp, 3)
        assert [e.split("\n")[0] for e in events] == [
            "event: message_start",
            "event: content_block_start",
            "event: ping",
        ]
        assert events == [e for e in first_three.split("\n\n") if e]
    finally:
        conn.close()


def test_stream_bytes_are_relayed_verbatim(env: Env) -> None:
    text = (WIRE / "tool_use_stream.sse").read_text()
    env.fake.enqueue(sse_reply(text))
    conn, resp = open_stream(env)
    try:
        relayed = resp.read().decode()
    finally:
        conn.close()
    expected = "".join(e.decode() for e in fixture_reply("tool_use_stream.sse").events or ())
    assert relayed == expected


def test_client_disconnect_closes_upstream_and_records_partial_usage(env: Env) -> None:
    text = (WIRE / "text_stream.sse").read_text()
    first_four = "\n\n".join(text.split("\n\n")[:4]) + "\n\n"
    env.fake.enqueue(sse_reply(first_four, hang_after=True))
    conn, resp = open_stream(env)
    rid = resp.getheader("request-id") or ""
    read_events(resp, 4)
    conn.close()
    assert env.fake.wait_for_disconnect(10), "the gateway kept the upstream stream open"
    row = env.usage_row(rid)
    assert row["status"] == 499
    assert row["input_tokens"] == 25  # from message_start
    assert row["cache_creation_input_tokens"] == 7
    assert row["cache_read_input_tokens"] == 11
    assert row["output_tokens"] == 1
    assert row["stream"] == 1


def test_fifty_concurrent_streams_complete_independently(env: Env) -> None:
    env.fake.default_stream_delay_s = 0.05

    async def one(client: anthropic.AsyncAnthropic, i: int) -> str:
        async with client.messages.stream(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": f"stream {i}"}]
        ) as stream:
            return await stream.get_final_text()

    async def main() -> list[str]:
        async with anthropic.AsyncAnthropic(
            api_key=ALICE_KEY, base_url=env.gw.url, max_retries=0
        ) as client:
            return await asyncio.gather(*(one(client, i) for i in range(50)))

    texts = asyncio.run(main())
    assert texts == [f"echo: stream {i}" for i in range(50)]
    # Not serialised: most streams were open at the same time at the provider.
    assert env.fake.max_concurrent_streams >= 40


def test_long_stream_of_thousands_of_events(env: Env) -> None:
    n = 3000
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_long",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 9, "output_tokens": 1},
        },
    }
    events = [
        ("message_start", start),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"{i} "},
            },
        )
        for i in range(n)
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": n},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    env.fake.enqueue(sse_reply(events))
    with (
        env.client() as client,
        client.messages.stream(
            model=MODEL, max_tokens=n, messages=[{"role": "user", "content": "count"}]
        ) as stream,
    ):
        text = stream.get_final_text()
        rid = stream.response.headers["request-id"]
    assert text == "".join(f"{i} " for i in range(n))
    row = env.usage_row(rid)
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (9, n, 200)
