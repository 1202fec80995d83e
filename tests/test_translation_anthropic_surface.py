"""The Anthropic SDK (and so Claude Code) in front of OpenAI-compatible providers."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from tests.fakes.openai_upstream import error_reply, fixture_reply
from tests.translation_env import OPENAI_UPSTREAM_KEY, XEnv, make_xenv

HELLO = [{"role": "user", "content": "Hello"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
    {
        "name": "get_time",
        "description": "Time",
        "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}},
    },
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XEnv]:
    yield from make_xenv(tmp_path_factory.mktemp("x-anthropic"))


def test_create_text_with_cached_usage(env: XEnv) -> None:
    env.fake_openai.enqueue(fixture_reply("chat_completion.json"))
    with env.anthropic() as client:
        msg = client.messages.create(
            model="openai/gpt", max_tokens=50, system="Be brief.", messages=HELLO
        )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Hello, world! How can I help today?"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 1250 - 1024
    assert msg.usage.cache_read_input_tokens == 1024
    assert msg.usage.output_tokens == 15
    sent = env.fake_openai.chat_requests()[-1]
    body = sent.json()
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"


def test_stream_interleaved_parallel_tool_calls(env: XEnv) -> None:
    env.fake_openai.enqueue(fixture_reply("tool_calls_stream.sse"))
    with (
        env.anthropic() as client,
        client.messages.stream(
            model="openai/gpt",
            max_tokens=200,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "weather and time in Paris"}],
        ) as stream,
    ):
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "input_json_delta" in deltas
    tools = [b for b in final.content if b.type == "tool_use"]
    assert [(t.name, t.input) for t in tools] == [
        ("get_weather", {"location": "Paris, France", "unit": "celsius"}),
        ("get_time", {"timezone": "Europe/Paris"}),
    ]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens > 0
    sent = env.fake_openai.chat_requests()[-1].json()
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]


def test_reasoning_becomes_thinking(env: XEnv) -> None:
    env.fake_openai.enqueue(fixture_reply("reasoning_stream.sse"))
    with (
        env.anthropic() as client,
        client.messages.stream(model="openai/gpt", max_tokens=200, messages=HELLO) as stream,
    ):
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].thinking
    assert final.content[-1].type == "text" and final.content[-1].text


def test_length_maps_to_max_tokens(env: XEnv) -> None:
    env.fake_openai.enqueue(fixture_reply("length_stream.sse"))
    with (
        env.anthropic() as client,
        client.messages.stream(model="openai/gpt", max_tokens=5, messages=HELLO) as stream,
    ):
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"


def test_tool_result_round_trip_reaches_openai_as_tool_message(env: XEnv) -> None:
    env.fake_openai.enqueue(fixture_reply("chat_completion.json"))
    with env.anthropic() as client:
        client.messages.create(
            model="openai/gpt",
            max_tokens=50,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "call_1",
                            "name": "get_weather",
                            "input": {"location": "Paris"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C"}],
                },
            ],
        )
    msgs = env.fake_openai.chat_requests()[-1].json()["messages"]
    assistant = next(m for m in msgs if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    tool = next(m for m in msgs if m["role"] == "tool")
    assert tool["tool_call_id"] == "call_1"
    assert "18C" in str(tool["content"])


def test_openai_error_in_anthropic_shape(env: XEnv) -> None:
    env.fake_openai.enqueue(error_reply(429, "Rate limit reached", headers={"retry-after": "2"}))
    with env.anthropic() as client, pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="openai/gpt", max_tokens=5, messages=HELLO)
    assert isinstance(e.value.body, dict)
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert "Rate limit reached" in e.value.body["error"]["message"]
    assert e.value.response.headers["retry-after"] == "2"


def test_server_tools_are_rejected_with_400_naming_field_and_model(env: XEnv) -> None:
    before = len(env.fake_openai.requests)
    with env.anthropic() as client, pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="openai/gpt",
            max_tokens=5,
            messages=HELLO,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],  # type: ignore[list-item]
        )
    assert isinstance(e.value.body, dict)
    message = e.value.body["error"]["message"]
    assert "tools" in message and "openai/gpt" in message
    assert len(env.fake_openai.requests) == before


def test_count_tokens_uses_the_models_tokenizer(env: XEnv) -> None:
    import tiktoken

    text = "The quick brown fox jumps over the lazy dog. " * 200
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.count_tokens(
            model="openai/gpt",
            system="Be brief.",
            messages=[{"role": "user", "content": text}],
        )
    assert raw.headers["x-llmrelay-token-count"] == "tiktoken:o200k_base"
    enc = tiktoken.get_encoding("o200k_base")
    # OpenAI's chat framing: 3 per message + role + content, and 3 to prime the reply.
    expected = (
        3
        + (3 + len(enc.encode("system")) + len(enc.encode("Be brief.")))
        + (3 + len(enc.encode("user")) + len(enc.encode(text)))
    )
    assert raw.parse().input_tokens == expected


def test_count_tokens_for_an_unknown_model_is_a_marked_estimate(env: XEnv) -> None:
    text = "word " * 2000
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.count_tokens(
            model="openai/llama", messages=[{"role": "user", "content": text}]
        )
    assert raw.headers["x-llmrelay-token-count"] == "estimate"
    assert raw.parse().input_tokens >= 2000


def test_count_tokens_estimate_does_not_undercount_cjk(env: XEnv) -> None:
    text = "日本語のテキスト" * 500  # 4000 characters, at least one token each in BPE tokenizers
    with env.anthropic() as client:
        result = client.messages.count_tokens(
            model="openai/llama", messages=[{"role": "user", "content": text}]
        )
    assert result.input_tokens >= 4000


def test_claude_code_sized_max_tokens_is_capped_for_the_model(env: XEnv) -> None:
    with (
        env.anthropic() as client,
        client.messages.stream(
            model="openai/gpt-capped", max_tokens=32000, messages=HELLO
        ) as stream,
    ):
        stream.until_done()
    assert env.fake_openai.chat_requests()[-1].json()["max_completion_tokens"] == 16384
