"""A stream cut short is charged what it delivered (issue 13, core/delivered.py): by the
client or by the provider, on ``/v1/messages`` and on the native passthrough
``/proxy/{account}/...`` (Anthropic and OpenAI wires), never ``message_start``'s
placeholder; the row's ``error_message`` says how. Official SDKs, a real gateway, fakes
speaking each provider's wire."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import replace

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY
from tests.fakes.anthropic_upstream import deltas_reply
from tests.fakes.openai_upstream import chunks_reply
from tests.routing_env import HELLO, RoutingEnv, make_routing_env

ROLE_ONLY = {
    "id": "chatcmpl-cut",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
}
CONTENT = {**ROLE_ONLY, "choices": [{"index": 0, "delta": {"content": " the"}}]}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingEnv]:
    yield from make_routing_env(tmp_path_factory.mktemp("cut-billing"))


def _stream_cut(env: RoutingEnv, path: str, body: dict[str, object]) -> tuple[int, str, bytes]:
    """POST a stream and read until the gateway ends or cuts it: status, request id, body."""
    host, port = env.gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"x-api-key": ALICE_KEY, "authorization": f"Bearer {ALICE_KEY}"}
    if path.endswith("/messages"):
        del headers["authorization"]
    conn.request("POST", path, json.dumps(body), {**headers, "content-type": "application/json"})
    resp = conn.getresponse()
    out = b""
    try:
        while chunk := resp.read1(65536):
            out += chunk
    except http.client.IncompleteRead as e:  # the gateway cut the chunked body
        out += e.partial
    finally:
        resp.close()
        conn.close()
    rid = resp.getheader("request-id") or resp.getheader("x-request-id") or ""
    return resp.status, rid, out


def _messages(model: str) -> dict[str, object]:
    return {"model": model, "max_tokens": 200, "stream": True, "messages": HELLO}


def test_a_proxy_stream_the_client_leaves_is_charged_its_deltas(env: RoutingEnv) -> None:
    """/proxy/{account}/v1/messages, Anthropic SDK: 20 one-token deltas, then the client goes
    away: 20 output tokens, not message_start's 1."""
    env.primary.enqueue(deltas_reply(["tok "] * 20))
    seen = 0
    client = anthropic.Anthropic(
        api_key=ALICE_KEY, base_url=f"{env.gw.url}/proxy/primary", max_retries=0
    )
    with client.messages.stream(model="claude-x", max_tokens=200, messages=HELLO) as stream:
        rid = stream.response.headers["request-id"]
        for event in stream:
            if event.type == "content_block_delta":
                seen += 1
                if seen == 20:
                    break
    assert env.primary.wait_for_disconnect(5)
    row = env.usage_row(rid)
    assert (row["status"], row["error_type"]) == (499, "client_disconnected")
    assert row["output_tokens"] == 20 and row["input_tokens"] == 25
    assert "client disconnected after 20 content deltas; output_tokens=20" in row["error_message"]


def test_an_openai_proxy_stream_the_client_leaves_is_charged_its_deltas(
    env: RoutingEnv,
) -> None:
    """/proxy/{account}/v1/chat/completions, OpenAI SDK: the chunks' deltas are counted."""
    env.gpt.enqueue(chunks_reply([ROLE_ONLY, *[CONTENT] * 20], done=False, hang_after=True))
    got = 0
    client = openai.OpenAI(
        api_key=ALICE_KEY, base_url=f"{env.gw.url}/proxy/openai/v1", max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
    )
    chunks = raw.parse()
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            got += 1
            if got == 20:
                break
    chunks.close()
    row = env.usage_row(raw.headers["request-id"])
    assert (row["status"], row["provider"], row["output_tokens"]) == (499, "openai", 20)
    assert "client disconnected after 20 content deltas" in row["error_message"]


def test_a_stream_the_provider_cuts_is_charged_its_deltas(env: RoutingEnv) -> None:
    """/v1/messages relayed: the provider's connection drops after 20 deltas (no
    message_delta, no message_stop): the row keeps its error, charges 20, says how."""
    env.primary.enqueue(replace(deltas_reply(["tok "] * 20, hang_after=False), drop_after=True))
    status, rid, body = _stream_cut(env, "/v1/messages", _messages("primary/claude"))
    assert status == 200 and body.count(b"event: content_block_delta") == 20
    assert b"event: error" in body  # the client was told, in the stream
    row = env.usage_row(rid)
    assert row["status"] == 200 and row["error_type"] is not None
    assert row["output_tokens"] == 20
    assert "stream cut after 20 content deltas; output_tokens=20" in row["error_message"]


def test_a_proxy_stream_the_provider_cuts_is_charged_its_deltas(env: RoutingEnv) -> None:
    """The same through /proxy/{account}/v1/messages: the cut body is passed on, the row
    charges what went out."""
    env.primary.enqueue(replace(deltas_reply(["tok "] * 20, hang_after=False), drop_after=True))
    status, rid, body = _stream_cut(env, "/proxy/primary/v1/messages", _messages("claude-x"))
    assert status == 200 and body.count(b"event: content_block_delta") == 20
    row = env.usage_row(rid)
    assert row["output_tokens"] == 20 and row["input_tokens"] == 25
    assert "after 20 content deltas; output_tokens=20" in row["error_message"]


def test_an_openai_proxy_stream_the_provider_cuts_is_charged_its_deltas(
    env: RoutingEnv,
) -> None:
    """An OpenAI stream through /proxy cut before ``data: [DONE]`` and its usage chunk."""
    reply = chunks_reply([ROLE_ONLY, *[CONTENT] * 20], done=False)
    env.gpt.enqueue(replace(reply, drop_after=True))
    body = {"model": "gpt-4o-mini", "stream": True, "messages": HELLO}
    status, rid, out = _stream_cut(env, "/proxy/openai/v1/chat/completions", body)
    assert status == 200 and out.count(b'"content":" the"') == 20
    row = env.usage_row(rid)
    assert row["output_tokens"] == 20 and row["tokens_known"] == 1
    assert "after 20 content deltas; output_tokens=20" in row["error_message"]
