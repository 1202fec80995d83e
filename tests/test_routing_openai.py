"""Virtual models through the official OpenAI SDK (and the gate on translated streams):
fallback between an Anthropic target (translated) and an OpenAI target (passthrough), both
ways, streaming and not."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.fakes.anthropic_upstream import fixture_reply, stream_error_reply
from tests.fakes.openai_upstream import chunks_reply, error_reply
from tests.routing_env import GPT_MODEL, HELLO, RoutingEnv, make_routing_env

BUSY = {"error": {"message": "engine busy", "type": "server_error", "param": None, "code": 503}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingEnv]:
    yield from make_routing_env(tmp_path_factory.mktemp("routing-openai"))


def chat(env: RoutingEnv, model: str, stream: bool) -> tuple[str, dict[str, str]]:
    with env.openai() as client:
        if stream:
            raw = client.chat.completions.with_raw_response.create(
                model=model,
                messages=HELLO,
                stream=True,  # type: ignore[arg-type]
            )
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            return text, dict(raw.headers)
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=HELLO,  # type: ignore[arg-type]
        )
        return raw.parse().choices[0].message.content or "", dict(raw.headers)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_falls_back_from_an_anthropic_target_to_an_openai_target(
    env: RoutingEnv, stream: bool
) -> None:
    env.primary.enqueue(fixture_reply("error_529.json"))
    text, headers = chat(env, "claude-gpt", stream)
    assert text == "echo: Hello"
    assert headers["x-llmrelay-model"] == "openai/gpt" and headers["x-llmrelay-attempts"] == "2"
    sent = env.gpt.chat_requests()[-1].json()
    assert sent["model"] == GPT_MODEL
    if stream:  # the passthrough asked for usage on the client's behalf
        assert sent["stream_options"] == {"include_usage": True}
    row = env.usage_row(headers["x-request-id"])
    assert (row["provider"], row["attempts"]) == ("openai", 2)
    assert row["attempt_log"][0]["error_type"] == "overloaded_error"
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0


def test_an_openai_error_chunk_first_falls_back(env: RoutingEnv) -> None:
    env.gpt.enqueue(chunks_reply([BUSY], done=False))
    env.primary.enqueue(fixture_reply("text_stream.sse"))
    text, headers = chat(env, "gpt-claude", stream=True)
    assert text and headers["x-llmrelay-model"] == "primary/claude"
    row = env.usage_row(headers["x-request-id"])
    assert row["attempt_log"][0] == {
        "target": "openai/gpt",
        "status": 529,
        "error_type": "overloaded_error",
        "latency_s": row["attempt_log"][0]["latency_s"],
        "message": "engine busy",
    }


def test_an_openai_error_status_falls_back(env: RoutingEnv) -> None:
    env.gpt.enqueue(error_reply(503, "unavailable"))
    text, headers = chat(env, "gpt-claude", stream=False)
    assert text == "echo: Hello" and headers["x-llmrelay-model"] == "primary/claude"


def test_a_translated_stream_whose_first_event_is_an_error_falls_back(env: RoutingEnv) -> None:
    # OpenAI surface -> Anthropic targets: the gate reads the translated (canonical) stream.
    env.primary.enqueue(stream_error_reply(529))
    env.secondary.enqueue(fixture_reply("text_stream.sse"))
    text, headers = chat(env, "claude", stream=True)
    assert text and headers["x-llmrelay-model"] == "secondary/claude"


def test_anthropic_sdk_gate_on_an_openai_target_through_translation(env: RoutingEnv) -> None:
    env.gpt.enqueue(chunks_reply([BUSY], done=False))
    with (
        env.anthropic() as client,
        client.messages.stream(model="gpt-claude", max_tokens=20, messages=HELLO) as s,
    ):
        text = "".join(s.text_stream)
        assert s.response.headers["x-llmrelay-model"] == "primary/claude"
    assert text == "echo: Hello"


def test_all_throttled_reaches_the_openai_sdk_as_429_with_retry_after(env: RoutingEnv) -> None:
    env.primary.enqueue(fixture_reply("error_429.json", headers={"retry-after": "9"}))
    env.gpt.enqueue(error_reply(429, "slow down", headers={"retry-after": "4"}))
    with env.openai() as client, pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="claude-gpt", messages=HELLO)  # type: ignore[arg-type]
    assert e.value.response.headers["retry-after"] == "4"
    assert e.value.response.headers["x-llmrelay-model"] == "openai/gpt"
    body = e.value.body
    assert isinstance(body, dict) and body["message"] == "slow down"


def test_the_final_error_of_an_anthropic_target_is_in_openai_envelope(env: RoutingEnv) -> None:
    env.primary.enqueue(fixture_reply("error_529.json"))
    env.gpt.enqueue(error_reply(400, "bad"))
    with env.openai() as client, pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="claude-gpt", messages=HELLO)  # type: ignore[arg-type]
    env.primary.enqueue(fixture_reply("error_529.json"))
    env.secondary.enqueue(fixture_reply("error_529.json"))
    with env.openai() as client, pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="claude", messages=HELLO)  # type: ignore[arg-type]
    assert e.value.status_code == 529
    assert isinstance(e.value.body, dict) and e.value.body["message"] == "Overloaded"
    assert e.value.response.headers["x-llmrelay-attempts"] == "2"


def test_the_anthropic_sdk_sees_a_provider_error_in_its_own_envelope(env: RoutingEnv) -> None:
    env.primary.enqueue(fixture_reply("error_529.json"))
    env.gpt.enqueue(error_reply(500, "server broke"))
    with env.anthropic() as client, pytest.raises(anthropic.InternalServerError) as e:
        client.messages.create(model="claude-gpt", max_tokens=20, messages=HELLO)
    assert isinstance(e.value.body, dict) and e.value.body["error"]["type"] == "api_error"
    assert "server broke" in e.value.body["error"]["message"]
