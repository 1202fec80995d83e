"""/v1/messages through llmrelay to an Anthropic upstream, driven by the official SDK."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic, fixture_reply
from tests.gateway_env import (
    PROVIDER_MODEL,
    UPSTREAM_KEY,
    Env,
    base_config,
    make_env,
    providers_for,
    raw_request,
    start_gateway,
)

MODEL = "anthropic/claude-3-5"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from make_env(tmp_path_factory.mktemp("passthrough"))


def last_upstream(env: Env) -> Any:
    return env.fake.requests_to("/v1/messages")[-1]


def test_plain_create_returns_upstream_message_unchanged(env: Env) -> None:
    env.fake.enqueue(fixture_reply("message.json"))
    with env.client() as client:
        msg = client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
        )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Hello, world! How can I help today?"
    assert msg.id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert msg.model == PROVIDER_MODEL
    assert msg.usage.input_tokens == 25
    assert msg.usage.cache_creation_input_tokens == 7
    assert msg.usage.cache_read_input_tokens == 11
    assert msg.usage.output_tokens == 15
    assert msg._request_id is not None and msg._request_id.startswith("req_")
    up = last_upstream(env)
    assert up.json()["model"] == PROVIDER_MODEL
    assert up.headers["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in up.headers
    assert all(ALICE_KEY not in v for v in up.headers.values())


def test_a_cookie_a_provider_sets_never_rides_on_another_call(tmp_path: Path) -> None:
    # One upstream session serves every caller: a cookie jar would send alice's cookie on
    # bob's call. (aiohttp's jar ignores cookies of IP hosts: the provider is named.)
    with FakeAnthropic() as fake:
        named = {
            **providers_for(fake)["anthropic"],
            "base_url": fake.url.replace("127.0.0.1", "localhost"),
        }
        gw = start_gateway(tmp_path, base_config(tmp_path, {"anthropic": named}))
        try:
            fake.enqueue(
                fixture_reply("message.json", headers={"set-cookie": "session=alice-only; Path=/"})
            )
            fake.enqueue(fixture_reply("message.json"))
            for key in (ALICE_KEY, BOB_KEY):
                client = anthropic.Anthropic(api_key=key, base_url=gw.url, max_retries=0)
                with client:
                    raw = client.messages.with_raw_response.create(
                        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
                    )
                assert "set-cookie" not in raw.headers  # not relayed to the client either
            assert len(fake.requests) == 2
            assert "cookie" not in fake.requests[-1].headers
        finally:
            gw.stop()


SYSTEM_BLOCKS = [
    {"type": "text", "text": "You are terse."},
    {"type": "text", "text": "Cache me.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
            "additionalProperties": False,
        },
    }
]
PNG_1PX = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf"
    "DwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
REQUESTS: dict[str, dict[str, Any]] = {
    "system_string": {"system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}]},
    "system_blocks": {"system": SYSTEM_BLOCKS, "messages": [{"role": "user", "content": "Hi"}]},
    "multi_turn": {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Again", "cache_control": {"type": "ephemeral"}}
                ],
            },
        ]
    },
    "tool_result_round_trip": {
        "tools": TOOLS,
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01A",
                        "name": "get_weather",
                        "input": {"location": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01A",
                        "is_error": False,
                        "content": [{"type": "text", "text": "18C, sunny"}],
                    },
                ],
            },
        ],
    },
    "thinking_signatures": {
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": "2+2?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "Add them.",
                        "signature": "EqQBCkYIARgCIkD+/==",
                    },
                    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
                    {"type": "text", "text": "4"},
                ],
            },
            {"role": "user", "content": "And 3+3?"},
        ],
    },
    "image_block": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX},
                    },
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ]
    },
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_reaches_upstream_with_only_model_replaced(env: Env, name: str) -> None:
    body = copy.deepcopy(REQUESTS[name])
    env.fake.enqueue(fixture_reply("message.json"))
    with env.client() as client:
        client.messages.create(model=MODEL, max_tokens=64, **body)
    sent = last_upstream(env).json()
    assert sent == {**REQUESTS[name], "model": PROVIDER_MODEL, "max_tokens": 64}


def test_unknown_fields_and_beta_headers_pass_through(env: Env) -> None:
    env.fake.enqueue(fixture_reply("message.json"))
    extra = {
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "output_config": {"effort": "high"},
        "a_field_newer_than_llmrelay": {"nested": [1, 2.5, None, True, "é"]},
        "cache_control": {"type": "ephemeral"},
        "metadata": {"user_id": '{"session_id":"abc"}'},
    }
    with env.client() as client:
        client.beta.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            betas=["context-management-2025-06-27", "some-future-beta"],
            extra_body=extra,
            extra_headers={"x-claude-code-session-id": "sess-1"},
            extra_query={"beta": "true"},  # what Claude Code and older SDKs send
        )
    up = last_upstream(env)
    assert up.query == "beta=true"
    for key, value in extra.items():
        assert up.json()[key] == value
    assert up.headers["anthropic-beta"] == "context-management-2025-06-27,some-future-beta"
    assert up.headers["x-claude-code-session-id"] == "sess-1"
    assert "anthropic-version" in up.headers


def test_exotic_json_keeps_its_meaning(env: Env) -> None:
    # Integers beyond 64 bits and lone surrogates are legal JSON; neither may be altered.
    raw = (
        b'{"model": "anthropic/claude-3-5", "max_tokens": 5,'
        b' "seed_like": 123456789012345678901234567890,'
        b' "messages": [{"role": "user", "content": "half a pair: \\ud83d"}]}'
    )
    env.fake.enqueue(fixture_reply("message.json"))
    status, _, _ = raw_request(env.gw.url + "/v1/messages", raw, {"x-api-key": ALICE_KEY})
    assert status == 200
    sent = json.loads(last_upstream(env).body)
    assert sent["seed_like"] == 123456789012345678901234567890
    assert sent["messages"][0]["content"] == "half a pair: \ud83d"
    assert sent["model"] == PROVIDER_MODEL


def test_stream_text_and_usage(env: Env) -> None:
    env.fake.enqueue(fixture_reply("text_stream.sse"))
    with (
        env.client() as client,
        client.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
        ) as stream,
    ):
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "Hello, world! How can I help today?"
    assert len(texts) == 4
    assert final.usage.input_tokens == 25
    assert final.usage.output_tokens == 15
    assert final.stop_reason == "end_turn"
    assert last_upstream(env).json()["stream"] is True


def test_stream_tool_input_json_deltas(env: Env) -> None:
    env.fake.enqueue(fixture_reply("tool_use_stream.sse"))
    with (
        env.client() as client,
        client.messages.stream(
            model=MODEL,
            max_tokens=100,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "Weather?"}],
        ) as stream,
    ):
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "input_json_delta" in kinds
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.name == "get_weather"
    assert tool.input == {"location": "San Francisco, CA", "unit": "celsius"}
    assert final.stop_reason == "tool_use"


def test_stream_thinking_and_signature_deltas(env: Env) -> None:
    env.fake.enqueue(fixture_reply("thinking_stream.sse"))
    with (
        env.client() as client,
        client.messages.stream(
            model=MODEL,
            max_tokens=2000,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "Think"}],
        ) as stream,
    ):
        kinds = {e.delta.type for e in stream if e.type == "content_block_delta"}
        final = stream.get_final_message()
    assert {"thinking_delta", "signature_delta", "text_delta"} <= kinds
    thinking = final.content[0]
    assert thinking.type == "thinking"
    assert thinking.signature and thinking.thinking


def test_nonstream_thinking_signature_unchanged(env: Env) -> None:
    env.fake.enqueue(fixture_reply("thinking_message.json"))
    with env.client() as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=2000, messages=[{"role": "user", "content": "Think"}]
        )
    fixture = (Path(__file__).parent / "wire/anthropic/thinking_message.json").read_text()
    assert json.loads(raw.http_response.text) == json.loads(fixture)


def test_count_tokens_answered_by_provider(env: Env) -> None:
    with env.client() as client:
        result = client.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": "count me"}]
        )
    up = env.fake.requests_to("/v1/messages/count_tokens")[-1]
    assert up.json()["model"] == PROVIDER_MODEL
    from tests.fakes.anthropic_upstream import count_tokens_for

    assert result.input_tokens == count_tokens_for(up.body)
    assert up.headers["x-api-key"] == UPSTREAM_KEY


def test_beta_count_tokens(env: Env) -> None:
    with env.client() as client:
        result = client.beta.messages.count_tokens(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            betas=["token-counting-2024-11-01"],
            extra_query={"beta": "true"},
        )
    up = env.fake.requests_to("/v1/messages/count_tokens")[-1]
    assert up.query == "beta=true"
    assert result.input_tokens > 0


def test_models_list_shows_client_ids(env: Env) -> None:
    with env.client() as client:
        ids = [m.id for m in client.models.list()]
        page = client.models.list(limit=2)
    assert ids == ["anthropic/claude-3-5", "slow/claude", "dead/claude", "local/echo"]
    assert [m.id for m in page.data] == ids[:2]
    assert page.has_more is True
    assert page.first_id == ids[0] and page.last_id == ids[1]
    assert all(m.type == "model" and m.display_name for m in page.data)


def test_models_retrieve(env: Env) -> None:
    with env.client() as client:
        assert client.models.retrieve("local/echo").id == "local/echo"
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("local/nope")


@pytest.mark.parametrize("how", ["x-api-key", "bearer", "both"])
def test_both_auth_patterns(env: Env, how: str) -> None:
    headers = {"x-api-key": ALICE_KEY} if how in ("x-api-key", "both") else {}
    token = ALICE_KEY if how in ("bearer", "both") else None
    with anthropic.Anthropic(
        api_key=None, auth_token=token, base_url=env.gw.url, default_headers=headers, max_retries=0
    ) as client:
        msg = client.messages.create(
            model="local/echo", max_tokens=50, messages=[{"role": "user", "content": "auth"}]
        )
    assert msg.content[0].type == "text" and msg.content[0].text == "mock echo: auth"


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"x-api-key": "sk-wrong-key-000000"}, "invalid gateway key"),
        ({"authorization": "Bearer sk-wrong-key-000000"}, "invalid gateway key"),
        ({"x-api-key": ALICE_KEY, "authorization": f"Bearer {BOB_KEY}"}, "different keys"),
    ],
)
def test_auth_failures_are_401_in_anthropic_shape(
    env: Env, headers: dict[str, str], fragment: str
) -> None:
    before = len(env.fake.requests)
    with (
        anthropic.Anthropic(
            api_key=None,
            auth_token=None,
            base_url=env.gw.url,
            default_headers=headers,
            max_retries=0,
        ) as client,
        pytest.raises(anthropic.AuthenticationError) as e,
    ):
        client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    body = e.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert fragment in body["error"]["message"]
    assert ALICE_KEY not in str(body) and BOB_KEY not in str(body)
    assert e.value.response.headers["request-id"].startswith("req_")
    assert len(env.fake.requests) == before


def test_missing_key_is_401(env: Env) -> None:
    body = b'{"model": "local/echo", "max_tokens": 5, "messages": []}'
    status, headers, raw = raw_request(env.gw.url + "/v1/messages", body)
    assert status == 401
    assert headers["request-id"].startswith("req_")
    err = json.loads(raw)
    assert err["type"] == "error"
    assert err["error"]["type"] == "authentication_error"
    assert "missing gateway key" in err["error"]["message"]
    assert err["request_id"] == headers["request-id"]


def test_unknown_model_is_404_and_never_reaches_a_provider(env: Env) -> None:
    before = len(env.fake.requests)
    with env.client() as client:
        for model in ("anthropic/nope", "nope/claude-3-5", "claude-3-5"):
            with pytest.raises(anthropic.NotFoundError) as e:
                client.messages.create(
                    model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}]
                )
            assert isinstance(e.value.body, dict)
            assert e.value.body["error"]["type"] == "not_found_error"
            assert model in e.value.body["error"]["message"]
    assert len(env.fake.requests) == before


def test_a_key_sent_as_the_model_is_masked_in_the_answer_the_row_and_the_log(env: Env) -> None:
    """A key pasted into ``model`` (the caller's own, whatever its shape, or anything shaped
    like a key) is never stored or logged: the 404 and the row name it masked."""
    odd_key = "plainsecret-" + "7" * 20  # a configured key with no known key shape
    for key, model in ((ALICE_KEY, ALICE_KEY), (ALICE_KEY, "x " + BOB_KEY + " y")):
        with env.client(key) as client, pytest.raises(anthropic.NotFoundError) as e:
            client.messages.create(
                model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        message = e.value.body["error"]["message"]  # type: ignore[index]
        assert ALICE_KEY not in message and BOB_KEY not in message
        assert "sk-***" in message
        row = env.usage_row(e.value.response.headers["request-id"])
        assert ALICE_KEY not in row["model"] + (row["error_message"] or "")
        assert BOB_KEY not in row["model"] + (row["error_message"] or "")
    status, _, raw_body = raw_request(
        env.gw.url + "/v1/messages",
        json.dumps({"model": f"my {odd_key}", "max_tokens": 5, "messages": []}).encode(),
        {"x-api-key": odd_key},
    )
    assert status == 401  # not a key of this gateway: refused before the model is read
    assert odd_key not in raw_body.decode()
    assert ALICE_KEY not in env.gw.log() and BOB_KEY not in env.gw.log()


def test_path_prefix_anthropic(env: Env) -> None:
    env.fake.enqueue(fixture_reply("message.json"))
    with env.client(base_url=env.gw.url + "/anthropic") as client:
        msg = client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        ids = [m.id for m in client.models.list()]
    assert msg.id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert "anthropic/claude-3-5" in ids


def test_large_body_is_accepted(env: Env) -> None:
    big = "x" * (5 * 1024 * 1024)
    env.fake.enqueue(fixture_reply("message.json"))
    with env.client() as client:
        client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": big}]
        )
    assert last_upstream(env).json()["messages"][0]["content"] == big
