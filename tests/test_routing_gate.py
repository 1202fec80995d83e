"""The first-chunk gate waits for content (issue 13): a virtual model's stream that fails
after its preamble (``message_start``, pings, a role-only delta) falls back as cleanly as an
error status; when every target fails before content the SDKs get an HTTP error status;
the preamble is capped; a client that leaves mid-stream is charged what it was delivered;
a translated ``message_start`` carries the input count. Official SDKs, a real gateway,
fakes speaking each provider's wire."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY
from tests.fakes.anthropic_upstream import (
    WIRE_DIR,
    deltas_reply,
    fixture_reply,
    preamble_error_reply,
    sse_events,
    sse_reply,
)
from tests.fakes.openai_upstream import chunks_reply
from tests.gateway_env import raw_request
from tests.routing_env import HELLO, RoutingEnv, make_routing_env

#: The cap this file's gateway runs with (``server.max_stream_preamble_kb``).
PREAMBLE_KB = 1
FALLBACK_ID = "msg_01XFDUDYJgAACzvnptvVoYEL"  # text_stream.sse's message id
ROLE_ONLY = {
    "id": "chatcmpl-failed",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
}
BUSY = {"error": {"message": "engine busy", "type": "server_error", "param": None, "code": 503}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingEnv]:
    server = {"max_stream_preamble_kb": PREAMBLE_KB}
    yield from make_routing_env(tmp_path_factory.mktemp("routing-gate"), server)


def stream_body(model: str) -> bytes:
    return json.dumps(
        {"model": model, "max_tokens": 20, "stream": True, "messages": HELLO}
    ).encode()


def post_stream(env: RoutingEnv, model: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"x-api-key": ALICE_KEY, "content-type": "application/json"}
    return raw_request(env.gw.url + "/v1/messages", stream_body(model), headers)


def attempts(row: dict) -> list[tuple[str, int, str | None]]:  # type: ignore[type-arg]
    return [(a["target"], a["status"], a["error_type"]) for a in row["attempt_log"]]


def test_an_overload_after_message_start_and_ping_falls_back_cleanly(env: RoutingEnv) -> None:
    """(a) Bifrost #5395: the client sees one message_start, the fallback's."""
    env.primary.enqueue(preamble_error_reply(529, pings=2))
    env.secondary.enqueue(fixture_reply("text_stream.sse"))
    with (
        env.anthropic() as client,
        client.messages.stream(model="claude", max_tokens=20, messages=HELLO) as stream,
    ):
        types = [e.type for e in stream]
        final = stream.get_final_message()
        headers = stream.response.headers
    assert types.count("message_start") == 1 and "error" not in types
    assert (
        final.id == FALLBACK_ID and final.content[0].text == "Hello, world! How can I help today?"
    )  # type: ignore[union-attr]
    assert headers["x-llmrelay-model"] == "secondary/claude"
    row = env.usage_row(headers["request-id"])
    assert attempts(row) == [
        ("primary/claude", 529, "overloaded_error"),
        ("secondary/claude", 200, None),
    ]
    assert row["status"] == 200 and row["error_type"] is None and row["attempts"] == 2
    # Byte for byte the fallback's stream: nothing of the failed preamble.
    env.primary.enqueue(preamble_error_reply(529))
    env.secondary.enqueue(fixture_reply("text_stream.sse"))
    status, _, body = post_stream(env, "claude")
    assert status == 200
    assert body == b"".join(sse_events((WIRE_DIR / "text_stream.sse").read_text()))


def test_every_target_failing_after_its_preamble_is_an_http_529(env: RoutingEnv) -> None:
    """(b) LiteLLM #38610: an error status the SDK raises (and would retry), not a stream."""
    env.primary.enqueue(preamble_error_reply(529))
    env.secondary.enqueue(preamble_error_reply(529, "Still overloaded"))
    with (
        env.anthropic() as client,
        pytest.raises(anthropic.APIStatusError) as e,
        client.messages.stream(model="claude", max_tokens=20, messages=HELLO),
    ):
        pass
    assert isinstance(e.value, anthropic.OverloadedError) and e.value.status_code == 529
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"] == {"type": "overloaded_error", "message": "Still overloaded"}
    row = env.usage_row(e.value.response.headers["request-id"])
    assert (row["status"], row["error_type"], row["attempts"]) == (529, "overloaded_error", 2)
    # An error status is what the SDK retries on: its second try is served.
    env.primary.enqueue(preamble_error_reply(529))
    env.secondary.enqueue(preamble_error_reply(529))
    with (
        env.anthropic(max_retries=1) as client,
        client.messages.stream(model="claude", max_tokens=20, messages=HELLO) as stream,
    ):
        assert "".join(stream.text_stream) == "echo: Hello"
    # The same through the OpenAI SDK (Anthropic targets, translated streams).
    env.primary.enqueue(preamble_error_reply(529))
    env.secondary.enqueue(preamble_error_reply(529))
    with env.openai() as oclient, pytest.raises(openai.APIStatusError) as oe:
        oclient.chat.completions.create(model="claude", messages=HELLO, stream=True)  # type: ignore[arg-type]
    assert oe.value.status_code == 529
    assert isinstance(oe.value.body, dict) and oe.value.body["message"] == "Overloaded"


def test_an_error_status_then_a_failed_preamble_is_an_error_status(env: RoutingEnv) -> None:
    """(c)"""
    env.primary.enqueue(fixture_reply("error_529.json"))
    env.secondary.enqueue(preamble_error_reply(500, "Internal server error"))
    with env.anthropic() as client, pytest.raises(anthropic.InternalServerError) as e:
        client.messages.create(model="claude", max_tokens=20, messages=HELLO, stream=True)
    assert e.value.status_code == 500
    assert e.value.response.headers["x-llmrelay-model"] == "secondary/claude"
    row = env.usage_row(e.value.response.headers["request-id"])
    assert attempts(row) == [
        ("primary/claude", 529, "overloaded_error"),
        ("secondary/claude", 500, "api_error"),
    ]


def test_a_role_only_delta_then_an_error_chunk_falls_back(env: RoutingEnv) -> None:
    """(d) Chat Completions passthrough: the role-only first delta does not commit."""
    env.gpt.enqueue(chunks_reply([ROLE_ONLY, BUSY], done=False))
    with env.openai() as client:
        chunks = list(
            client.chat.completions.create(model="gpt-claude", messages=HELLO, stream=True)  # type: ignore[arg-type]
        )
    assert "chatcmpl-failed" not in {c.id for c in chunks}
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]  # one role delta: the fallback's
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ("echo: Hello")
    rows = [r for r in env.usage_rows() if r["model"] == "gpt-claude"]
    log = json.loads(rows[-1]["attempt_log"])
    assert [(a["target"], a["status"], a["error_type"]) for a in log] == [
        ("openai/gpt", 529, "overloaded_error"),
        ("primary/claude", 200, None),
    ]
    # The Anthropic SDK on the same target: the translated stream's gate.
    env.gpt.enqueue(chunks_reply([ROLE_ONLY, BUSY], done=False))
    with (
        env.anthropic() as aclient,
        aclient.messages.stream(model="gpt-claude", max_tokens=20, messages=HELLO) as s,
    ):
        types = [e.type for e in s]
        assert s.response.headers["x-llmrelay-model"] == "primary/claude"
    assert types.count("message_start") == 1 and s.get_final_message().id != "chatcmpl-failed"


def test_all_throttled_streams_get_429_with_the_shortest_retry_after(env: RoutingEnv) -> None:
    """(e) A throttle inside a stream (no header) and a 429 status with one."""
    env.primary.enqueue(fixture_reply("error_429.json", headers={"retry-after": "7"}))
    env.secondary.enqueue(preamble_error_reply(429, "Rate limited"))
    with env.anthropic() as client, pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="claude", max_tokens=20, messages=HELLO, stream=True)
    assert e.value.response.headers["retry-after"] == "7"
    assert e.value.response.headers["x-llmrelay-model"] == "primary/claude"
    env.primary.enqueue(fixture_reply("error_429.json", headers={"retry-after": "9"}))
    env.secondary.enqueue(fixture_reply("error_429.json", headers={"retry-after": "2"}))
    with env.anthropic() as client, pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="claude", max_tokens=20, messages=HELLO, stream=True)
    assert e.value.response.headers["retry-after"] == "2"


def test_a_preamble_past_the_cap_commits_to_its_stream(env: RoutingEnv) -> None:
    """(f) More than server.max_stream_preamble_kb before content: the gate commits; what
    follows is relayed as it comes, an error too, and nothing falls back."""
    before = env.messages_to(env.secondary)
    pings = 2 * PREAMBLE_KB * 1024 // len(b'event: ping\ndata: {"type":"ping"}\n\n')
    env.primary.enqueue(preamble_error_reply(529, pings=pings))
    status, headers, body = post_stream(env, "claude")
    assert status == 200 and headers["x-llmrelay-attempts"] == "1"
    assert body.startswith(b"event: message_start") and body.count(b"event: ping") == pings
    assert body.endswith(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    assert env.messages_to(env.secondary) == before
    row = env.usage_row(headers["request-id"])
    assert (row["status"], row["error_type"], row["attempts"]) == (200, "overloaded_error", 1)
    assert "stream preamble past its cap: committed before content" in env.gw.log()
    assert "1024 bytes (server.max_stream_preamble_kb)" in env.gw.log()


def test_a_client_that_leaves_is_charged_the_deltas_it_was_sent(env: RoutingEnv) -> None:
    """(g) 20 deltas of one token each (4 ASCII bytes, core/delivered.py), then the client
    goes away: 20 output tokens, not message_start's placeholder 1."""
    env.primary.enqueue(deltas_reply(["tok "] * 20))
    seen = 0
    with (
        env.anthropic() as client,
        client.messages.stream(model="claude", max_tokens=200, messages=HELLO) as stream,
    ):
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
    assert "after 20 content deltas; output_tokens=20" in row["error_message"]


def test_a_client_that_leaves_a_translated_stream_is_charged_what_it_got(
    env: RoutingEnv,
) -> None:
    """(g) The same through the OpenAI SDK, the Anthropic stream translated."""
    env.primary.enqueue(deltas_reply(["tok "] * 20))
    got = 0
    with env.openai() as client:
        stream = client.chat.completions.with_raw_response.create(
            model="claude",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
        rid = stream.headers["x-request-id"]
        chunks = stream.parse()
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                got += 1
                if got == 20:
                    break
        chunks.close()
    row = env.usage_row(rid)
    assert (row["status"], row["output_tokens"]) == (499, 20)


def test_a_translated_message_start_carries_the_input_estimate(env: RoutingEnv) -> None:
    """(h) An OpenAI provider behind the Anthropic surface: message_start's input_tokens is
    the gateway's estimate (tokens.estimate_tokens); the final count is the provider's."""
    prompt = [{"role": "user", "content": "word " * 800}]
    with (
        env.anthropic() as client,
        client.messages.stream(model="openai/gpt", max_tokens=20, messages=prompt) as stream,
    ):
        start = next(e for e in stream if e.type == "message_start")
        estimate = start.message.usage.input_tokens  # type: ignore[union-attr]
        final = stream.get_final_message()
        rid = stream.response.headers["request-id"]
    row = env.usage_row(rid)
    assert final.usage.input_tokens == row["input_tokens"] > 0
    assert estimate > 0 and abs(estimate - final.usage.input_tokens) <= 0.1 * row["input_tokens"]


def test_account_model_streams_are_not_held(env: RoutingEnv) -> None:
    """No fallback to try: an account/model stream is relayed as it comes, preamble and all."""
    env.primary.enqueue(preamble_error_reply(529))
    status, _, body = post_stream(env, "primary/claude")
    assert status == 200 and body.startswith(b"event: message_start")
    assert b"event: error" in body
    env.primary.enqueue(sse_reply([("ping", {"type": "ping"})]))  # ends in its preamble
    status, _, body = post_stream(env, "primary/claude")
    assert status == 200 and body.startswith(b"event: ping")


def test_the_openai_sdk_sees_only_the_fallback_of_a_translated_stream(env: RoutingEnv) -> None:
    """(a) through translation: Anthropic targets behind the OpenAI surface."""
    env.primary.enqueue(preamble_error_reply(529, pings=3))
    env.secondary.enqueue(fixture_reply("text_stream.sse"))
    with env.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="claude",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
        chunks = list(raw.parse())
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world! How can I help today?"
    row = env.usage_row(raw.headers["x-request-id"])
    assert attempts(row) == [
        ("primary/claude", 529, "overloaded_error"),
        ("secondary/claude", 200, None),
    ]


def test_a_client_that_leaves_is_counted_with_the_tokenizer_when_loaded(env: RoutingEnv) -> None:
    """(g) An OpenAI model whose tiktoken vocabulary count_tokens loaded: the delivered
    text is counted with it (" understanding" is one o200k token; the estimate says 3)."""
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.count_tokens(model="openai/gpt", messages=HELLO)
    assert raw.headers["x-llmrelay-token-count"] == "tiktoken:o200k_base"
    head = {"id": "chatcmpl-long", "object": "chat.completion.chunk", "created": 1}
    content = {**head, "choices": [{"index": 0, "delta": {"content": " understanding"}}]}
    env.gpt.enqueue(chunks_reply([ROLE_ONLY, *[content] * 20], done=False, hang_after=True))
    seen = 0
    with (
        env.anthropic() as client,
        client.messages.stream(model="openai/gpt", max_tokens=200, messages=HELLO) as stream,
    ):
        rid = stream.response.headers["request-id"]
        for event in stream:
            if event.type == "content_block_delta":
                seen += 1
                if seen == 20:
                    break
    row = env.usage_row(rid)
    assert (row["status"], row["output_tokens"]) == (499, 20)
    assert "counted with tiktoken o200k_base" in row["error_message"]
    assert row["input_tokens"] > 0  # message_start's estimate: usage never came


def test_a_client_that_leaves_an_openai_passthrough_is_charged_what_it_got(
    env: RoutingEnv,
) -> None:
    """(g) Chat Completions relayed byte for byte: its deltas are counted as they go out."""
    head = {"id": "chatcmpl-long", "object": "chat.completion.chunk", "created": 1}
    content = {**head, "choices": [{"index": 0, "delta": {"content": " the"}}]}
    env.gpt.enqueue(chunks_reply([ROLE_ONLY, *[content] * 20], done=False, hang_after=True))
    got = 0
    with env.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-claude",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
        chunks = raw.parse()
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                got += 1
                if got == 20:
                    break
        chunks.close()
    row = env.usage_row(raw.headers["x-request-id"])
    assert (row["status"], row["provider"], row["output_tokens"]) == (499, "openai", 20)
    assert "after 20 content deltas" in row["error_message"]
