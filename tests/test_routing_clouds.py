"""Bedrock and Vertex as fallbacks of an Anthropic primary: the same client body goes to
each, with only the provider's own changes (model in the path, anthropic_version)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import (
    FakeAnthropic,
    fixture_reply,
    preamble_error_reply,
    stream_error_reply,
)
from tests.fakes.bedrock_upstream import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    FakeBedrock,
    bedrock_error_reply,
    bedrock_stream_reply,
)
from tests.fakes.vertex_upstream import FakeGoogleToken, FakeVertex

HELLO = [{"role": "user", "content": "Hello"}]
MODELS = {
    "anthropic": "claude-sonnet-4-6",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "vertex": "claude-sonnet-4-5@20250929",
}


@dataclass
class Clouds:
    anthropic: FakeAnthropic
    bedrock: FakeBedrock
    vertex: FakeVertex
    gw: GatewayProcess

    def client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=ALICE_KEY, base_url=self.gw.url, max_retries=0)


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clouds]:
    tmp = tmp_path_factory.mktemp("routing-clouds")
    fa, fb, token = FakeAnthropic(), FakeBedrock(), FakeGoogleToken()
    for f in (fa, fb, token):
        f.start()
    fv = FakeVertex(token_server=token)
    fv.start()
    providers: dict[str, Any] = {
        "anthropic": {
            "type": "anthropic",
            "base_url": fa.url,
            "api_key": "sk-ant-up",
            "models": {"claude": MODELS["anthropic"]},
        },
        "bedrock": {
            "type": "bedrock",
            "region": "us-east-1",
            "endpoint_url": fb.url,
            "access_key_id": TEST_ACCESS_KEY,
            "secret_access_key": TEST_SECRET_KEY,
            "models": {"claude": MODELS["bedrock"]},
        },
        "vertex": {
            "type": "vertex",
            "project": "fake-project",
            "region": "us-east5",
            "base_url": fv.url + "/v1",
            "credentials_file": str(token.write_service_account_file(tmp / "sa.json")),
            "models": {"claude": MODELS["vertex"]},
        },
    }
    models = {
        "claude-sonnet": {
            "targets": [
                {"model": "anthropic/claude", "priority": 1},
                {"model": "bedrock/claude", "priority": 2},
                {"model": "vertex/claude", "priority": 3},
            ]
        }
    }
    routing = {"cooldown": {"failures": 1000, "max_retry_after_s": 0}}
    try:
        gw = start_gateway(tmp, base_config(tmp, providers, models=models, routing=routing))
        try:
            yield Clouds(fa, fb, fv, gw)
        finally:
            gw.stop()
    finally:
        for f in (fa, fb, fv, token):
            f.stop()


def test_bedrock_takes_over_from_an_overloaded_anthropic(clouds: Clouds) -> None:
    clouds.anthropic.enqueue(fixture_reply("error_529.json"))
    with clouds.client() as client:
        raw = client.beta.messages.with_raw_response.create(
            model="claude-sonnet",
            max_tokens=20,
            messages=HELLO,
            betas=["interleaved-thinking-2025-05-14"],
            extra_body={"top_k": 3},
        )
    assert raw.parse().content[0].text == "echo: Hello"  # type: ignore[union-attr]
    assert raw.headers["x-llmrelay-model"] == "bedrock/claude"
    first = clouds.anthropic.requests_to("/v1/messages")[-1].json()
    assert first["model"] == MODELS["anthropic"] and first["top_k"] == 3
    sent = clouds.bedrock.requests_for("invoke")[-1]
    assert sent.model_id == MODELS["bedrock"]
    body = sent.payload
    assert "model" not in body and "stream" not in body and body["top_k"] == 3
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert body["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]


def test_a_stream_falls_back_from_anthropic_to_bedrock(clouds: Clouds) -> None:
    clouds.anthropic.enqueue(stream_error_reply(529))
    clouds.bedrock.enqueue(bedrock_stream_reply("text_stream.sse"))
    with (
        clouds.client() as client,
        client.messages.stream(model="claude-sonnet", max_tokens=20, messages=HELLO) as stream,
    ):
        events = [e.type for e in stream]
        headers = stream.response.headers
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert headers["x-llmrelay-model"] == "bedrock/claude"


@pytest.mark.parametrize("stream", [False, True])
def test_vertex_takes_over_when_anthropic_and_bedrock_fail(clouds: Clouds, stream: bool) -> None:
    clouds.anthropic.enqueue(fixture_reply("error_529.json"))
    if stream:
        # Bedrock's exception frame before any event is an HTTP error: it falls back too.
        clouds.bedrock.enqueue(
            bedrock_stream_reply(
                "text_stream.sse", exception=("throttlingException", "slow down"), exception_after=0
            )
        )
        clouds.vertex.enqueue(fixture_reply("text_stream.sse"))
    else:
        clouds.bedrock.enqueue(bedrock_error_reply(503, "ServiceUnavailableException", "busy"))
    with clouds.client() as client:
        if stream:
            with client.messages.stream(model="claude-sonnet", max_tokens=20, messages=HELLO) as s:
                s.until_done()
                headers = s.response.headers
        else:
            raw = client.messages.with_raw_response.create(
                model="claude-sonnet", max_tokens=20, messages=HELLO
            )
            headers = raw.headers
    assert headers["x-llmrelay-model"] == "vertex/claude"
    assert headers["x-llmrelay-attempts"] == "3"
    sent = clouds.vertex.requests[-1]
    assert sent.model == MODELS["vertex"]
    assert sent.specifier == ("streamRawPredict" if stream else "rawPredict")
    body = sent.json()
    assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    assert body["messages"] == HELLO


def test_errors_after_message_start_fall_back_across_clouds(clouds: Clouds) -> None:
    """The gate waits for content on every Anthropic-wire cloud: an overload after
    message_start and a ping (Anthropic), an exception frame after message_start (Bedrock),
    and Vertex serves one clean stream."""
    clouds.anthropic.enqueue(preamble_error_reply(529))
    clouds.bedrock.enqueue(
        bedrock_stream_reply(
            "text_stream.sse", exception=("throttlingException", "slow down"), exception_after=1
        )
    )
    clouds.vertex.enqueue(fixture_reply("text_stream.sse"))
    with (
        clouds.client() as client,
        client.messages.stream(model="claude-sonnet", max_tokens=20, messages=HELLO) as stream,
    ):
        events = [e.type for e in stream]
        headers = stream.response.headers
    assert events.count("message_start") == 1 and "error" not in events
    assert headers["x-llmrelay-model"] == "vertex/claude"
    assert headers["x-llmrelay-attempts"] == "3"


def test_every_cloud_failing_after_message_start_is_an_http_error(clouds: Clouds) -> None:
    clouds.anthropic.enqueue(preamble_error_reply(529))
    clouds.bedrock.enqueue(
        bedrock_stream_reply(
            "text_stream.sse", exception=("throttlingException", "slow down"), exception_after=1
        )
    )
    clouds.vertex.enqueue(preamble_error_reply(529, "Vertex overloaded"))
    with (
        clouds.client() as client,
        pytest.raises(anthropic.OverloadedError) as e,
        client.messages.stream(model="claude-sonnet", max_tokens=20, messages=HELLO),
    ):
        pass
    assert e.value.status_code == 529
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["message"] == "Vertex overloaded"
    assert e.value.response.headers["x-llmrelay-attempts"] == "3"
