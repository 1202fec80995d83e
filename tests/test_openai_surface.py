"""/v1/chat/completions through llmrelay, driven by the official openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import ALICE_KEY
from tests.fakes.anthropic_upstream import fixture_reply as anthropic_fixture
from tests.fakes.anthropic_upstream import json_reply
from tests.fakes.openai_upstream import fixture_reply
from tests.gateway_env import raw_request
from tests.translation_env import AZURE_UPSTREAM_KEY, OPENAI_UPSTREAM_KEY, XEnv, make_xenv

HELLO = [{"role": "user", "content": "Hello"}]
WIRE = Path(__file__).parent / "wire" / "openai"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XEnv]:
    yield from make_xenv(tmp_path_factory.mktemp("openai-surface"))


def test_passthrough_create(env: XEnv) -> None:
    env.fake_openai.enqueue(fixture_reply("chat_completion.json"))
    with env.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="openai/gpt",
            messages=HELLO,  # type: ignore[arg-type]
            extra_body={"some_vendor_field": {"x": 1}},
            temperature=0.5,
        )
        completion = raw.parse()
    expected = json.loads((WIRE / "chat_completion.json").read_text())
    assert json.loads(raw.http_response.text) == expected
    assert completion.choices[0].message.content == "Hello, world! How can I help today?"
    assert raw.headers["x-request-id"].startswith("req_")
    up = env.fake_openai.chat_requests()[-1]
    assert up.path == "/v1/chat/completions"
    assert up.json() == {
        "model": "gpt-4o-mini",
        "messages": HELLO,
        "temperature": 0.5,
        "some_vendor_field": {"x": 1},
    }
    assert up.headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"
    assert ALICE_KEY not in json.dumps(up.headers)


def test_passthrough_stream_tool_calls_accumulate(env: XEnv) -> None:
    env.fake_openai.enqueue(fixture_reply("tool_calls_stream.sse"))
    with (
        env.openai() as client,
        client.chat.completions.stream(
            model="openai/gpt",
            messages=HELLO,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        ) as stream,
    ):
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {  # type: ignore[union-attr]
        "location": "Paris, France",
        "unit": "celsius",
    }
    assert final.usage is not None


def test_passthrough_stream_without_include_usage_hides_the_usage_chunk(env: XEnv) -> None:
    env.fake_openai.enqueue(fixture_reply("text_stream.sse"))
    with env.openai() as client:
        chunks = list(
            client.chat.completions.create(model="openai/gpt", messages=HELLO, stream=True)
        )  # type: ignore[arg-type]
    assert all(c.choices for c in chunks), "a client that did not ask got a usage chunk"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Hello, world! How can I help today?"
    sent = env.fake_openai.chat_requests()[-1].json()
    assert sent["stream_options"] == {"include_usage": True}


def test_azure_deployment_path_and_key(env: XEnv) -> None:
    with env.openai() as client:
        completion = client.chat.completions.create(model="azure/gpt", messages=HELLO)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "echo: Hello"
    up = env.fake_openai.chat_requests()[-1]
    assert up.path == "/openai/deployments/my-gpt-deployment/chat/completions"
    assert up.query == "api-version=2024-10-21"
    assert up.headers["api-key"] == AZURE_UPSTREAM_KEY
    assert "authorization" not in up.headers


def test_openai_sdk_to_anthropic_provider_create(env: XEnv) -> None:
    env.fake_anthropic.enqueue(anthropic_fixture("message.json"))
    with env.openai() as client:
        completion = client.chat.completions.create(
            model="anthropic/claude",
            max_tokens=100,
            messages=[{"role": "system", "content": "Be brief."}, *HELLO],  # type: ignore[list-item]
        )
    assert completion.choices[0].message.content == "Hello, world! How can I help today?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 15
    sent = env.fake_anthropic.requests_to("/v1/messages")[-1].json()
    assert sent["model"] == "claude-sonnet-4-6"
    assert sent["max_tokens"] == 100
    system = sent["system"]
    assert (system if isinstance(system, str) else system[0]["text"]) == "Be brief."
    assert sent["messages"][0]["role"] == "user"


def test_openai_sdk_to_anthropic_provider_stream_tool_calls(env: XEnv) -> None:
    env.fake_anthropic.enqueue(anthropic_fixture("tool_use_stream.sse"))
    with (
        env.openai() as client,
        client.chat.completions.stream(
            model="anthropic/claude",
            messages=HELLO,  # type: ignore[arg-type]
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"location": {"type": "string"}},
                        },
                    },
                }
            ],
            stream_options={"include_usage": True},
        ) as stream,
    ):
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {  # type: ignore[union-attr]
        "location": "San Francisco, CA",
        "unit": "celsius",
    }
    assert final.usage is not None and final.usage.completion_tokens == 89
    sent = env.fake_anthropic.requests_to("/v1/messages")[-1].json()
    assert sent["stream"] is True
    assert sent["tools"][0]["name"] == "get_weather"


def test_anthropic_provider_error_in_openai_shape(env: XEnv) -> None:
    env.fake_anthropic.enqueue(anthropic_fixture("error_429.json", headers={"retry-after": "3"}))
    with env.openai() as client, pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="anthropic/claude", messages=HELLO)  # type: ignore[arg-type]
    assert isinstance(e.value.body, dict)
    assert "rate limit" in str(e.value.body["message"]).lower()
    assert e.value.response.headers["retry-after"] == "3"


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"object": "error", "message": "bad", "type": "BadRequestError", "code": 400}',
    ],
)
def test_provider_error_that_is_not_openais_envelope_reaches_the_client_in_it(
    env: XEnv, body: bytes
) -> None:
    # Relayed verbatim, a proxy's HTML page or vLLM's flat error was outside the envelope
    # the SDK reads (found by the ingress fuzz); its text is the message, its status kept.
    env.fake_openai.enqueue(json_reply(body, status=502, headers={"content-type": "text/html"}))
    payload = {"model": "openai/gpt", "messages": HELLO}
    status, headers, raw = raw_request(
        env.gw.url + "/v1/chat/completions", json.dumps(payload).encode(), {"x-api-key": ALICE_KEY}
    )
    assert status == 502
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"] == headers["request-id"]
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "502 Bad Gateway" in error["message"] or error["message"] == "bad"


def test_gateway_errors_in_openai_shape(env: XEnv) -> None:
    with (
        openai.OpenAI(
            api_key="sk-wrong-000000000", base_url=env.gw.url + "/v1", max_retries=0
        ) as bad,
        pytest.raises(openai.AuthenticationError) as e,
    ):
        bad.chat.completions.create(model="openai/gpt", messages=HELLO)  # type: ignore[arg-type]
    assert isinstance(e.value.body, dict) and "invalid gateway key" in str(e.value.body["message"])
    with env.openai() as client, pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="openai/nope", messages=HELLO)  # type: ignore[arg-type]
    assert "openai/nope" in str(nf.value.body)
    status, _, body = raw_request(
        env.gw.url + "/v1/chat/completions", b"{nope", {"authorization": f"Bearer {ALICE_KEY}"}
    )
    err = json.loads(body)
    assert status == 400 and set(err["error"]) >= {"message", "type", "param", "code"}


def test_models_list_in_openai_shape(env: XEnv) -> None:
    with env.openai() as client:
        ids = [m.id for m in client.models.list()]
    assert ids == [
        "anthropic/claude",
        "openai/gpt",
        "openai/gpt-capped",
        "openai/llama",
        "azure/gpt",
        "local/echo",
    ]
    with env.openai(base_url=env.gw.url + "/openai/v1") as client:
        assert [m.owned_by for m in client.models.list()][:2] == ["anthropic", "openai"]


def test_openai_prefix_chat(env: XEnv) -> None:
    with env.openai(base_url=env.gw.url + "/openai/v1") as client:
        completion = client.chat.completions.create(model="local/echo", messages=HELLO)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "mock echo: Hello"


def test_max_output_tokens_cap_on_passthrough(env: XEnv) -> None:
    with env.openai() as client:
        client.chat.completions.create(
            model="openai/gpt-capped",
            messages=HELLO,  # type: ignore[arg-type]
            max_completion_tokens=50000,
        )
        client.chat.completions.create(
            model="openai/gpt",
            messages=HELLO,  # type: ignore[arg-type]
            max_completion_tokens=50000,
        )
    capped, uncapped = (r.json() for r in env.fake_openai.chat_requests()[-2:])
    assert (capped["model"], capped["max_completion_tokens"]) == ("gpt-4o", 16384)
    assert uncapped["max_completion_tokens"] == 50000
