"""Claude on Bedrock and Vertex behind /v1/messages, through the official Anthropic SDK.

The same scenarios give the same results from the Anthropic, Bedrock and Vertex fakes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic, fixture_reply
from tests.fakes.bedrock_upstream import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    FakeBedrock,
    bedrock_error_reply,
    bedrock_stream_reply,
)
from tests.fakes.vertex_upstream import FakeGoogleToken, FakeVertex, google_error_reply

HELLO = [{"role": "user", "content": "Hello"}]
MODELS = {
    "anthropic": "claude-sonnet-4-6",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "vertex": "claude-sonnet-4-5@20250929",
}
MIXED_BETAS = ["interleaved-thinking-2025-05-14", "claude-code-20250219", "made-up-beta-2099"]


@dataclass
class Clouds:
    anthropic: FakeAnthropic
    bedrock: FakeBedrock
    vertex: FakeVertex
    token: FakeGoogleToken
    gw: GatewayProcess

    def client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=ALICE_KEY, base_url=self.gw.url, max_retries=0)


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clouds]:
    tmp = tmp_path_factory.mktemp("clouds")
    fa, fb, token = FakeAnthropic(), FakeBedrock(), FakeGoogleToken()
    for f in (fa, fb, token):
        f.start()
    fv = FakeVertex(token_server=token)
    fv.start()
    sa_file = token.write_service_account_file(tmp / "sa.json")
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
        "badkeys": {
            "type": "bedrock",
            "region": "us-east-1",
            "endpoint_url": fb.url,
            "access_key_id": TEST_ACCESS_KEY,
            "secret_access_key": "wrong-secret",
            "models": {"claude": MODELS["bedrock"]},
        },
        "vertex": {
            "type": "vertex",
            "project": "fake-project",
            "region": "us-east5",
            "base_url": fv.url + "/v1",
            "credentials_file": str(sa_file),
            "models": {"claude": MODELS["vertex"]},
        },
        "bglobal": {
            "type": "bedrock",
            "region": "us-east-1",
            "endpoint_url": fb.url,
            "access_key_id": TEST_ACCESS_KEY,
            "secret_access_key": TEST_SECRET_KEY,
            "models": {"claude": "global.anthropic.claude-sonnet-4-5-20250929-v1:0"},
        },
        "vglobal": {
            "type": "vertex",
            "project": "fake-project",
            "region": "global",
            "base_url": fv.url + "/v1",
            "credentials_file": str(sa_file),
            "models": {"claude": MODELS["vertex"]},
        },
        "vpinned": {
            "type": "vertex",
            "project": "fake-project",
            "region": "global",
            "count_tokens_region": "europe-west1",
            "base_url": fv.url + "/v1",
            "credentials_file": str(sa_file),
            "models": {"claude": MODELS["vertex"]},
        },
    }
    try:
        gw = start_gateway(tmp, base_config(tmp, providers), "--log-level", "debug")
        try:
            yield Clouds(fa, fb, fv, token, gw)
        finally:
            gw.stop()
    finally:
        for f in (fa, fb, fv, token):
            f.stop()


def enqueue(c: Clouds, cloud: str, fixture: str) -> None:
    if cloud == "bedrock":
        if fixture.endswith(".sse"):
            c.bedrock.enqueue(bedrock_stream_reply(fixture))
        else:
            from tests.fakes.bedrock_upstream import bedrock_message_reply

            c.bedrock.enqueue(bedrock_message_reply(fixture))
    elif cloud == "vertex":
        c.vertex.enqueue(fixture_reply(fixture))
    else:
        c.anthropic.enqueue(fixture_reply(fixture))


CLOUDS = ["anthropic", "bedrock", "vertex"]


@pytest.mark.parametrize(
    "fixture", ["text_stream.sse", "tool_use_stream.sse", "thinking_stream.sse"]
)
def test_same_stream_from_every_cloud(clouds: Clouds, fixture: str) -> None:
    results = []
    for cloud in CLOUDS:
        enqueue(clouds, cloud, fixture)
        with (
            clouds.client() as client,
            client.messages.stream(
                model=f"{cloud}/claude", max_tokens=100, messages=HELLO
            ) as stream,
        ):
            events = [e.type for e in stream]
            final = stream.get_final_message()
        results.append((events, final.model_dump(exclude={"model"})))
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize(
    "fixture", ["message.json", "tool_use_message.json", "thinking_message.json"]
)
def test_same_message_from_every_cloud(clouds: Clouds, fixture: str) -> None:
    results = []
    for cloud in CLOUDS:
        enqueue(clouds, cloud, fixture)
        with clouds.client() as client:
            msg = client.messages.create(model=f"{cloud}/claude", max_tokens=100, messages=HELLO)
        results.append(msg.model_dump(exclude={"model"}))
    assert results[0] == results[1] == results[2]


def test_bedrock_request_shape_and_beta_filtering(clouds: Clouds) -> None:
    with clouds.client() as client:
        client.beta.messages.create(
            model="bedrock/claude",
            max_tokens=5,
            messages=HELLO,
            betas=MIXED_BETAS,
            extra_body={"top_k": 3},
        )
    req = clouds.bedrock.requests_for("invoke")[-1]
    assert req.model_id == MODELS["bedrock"]
    body = req.payload
    assert "model" not in body and "stream" not in body
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert body["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert body["top_k"] == 3
    assert "anthropic-beta" not in req.headers
    assert ALICE_KEY not in json.dumps(req.headers)


def test_vertex_request_shape_and_beta_filtering(clouds: Clouds) -> None:
    with (
        clouds.client() as client,
        client.beta.messages.stream(
            model="vertex/claude", max_tokens=5, messages=HELLO, betas=MIXED_BETAS
        ) as stream,
    ):
        stream.until_done()
    req = clouds.vertex.requests[-1]
    assert (req.project, req.region, req.model, req.specifier) == (
        "fake-project",
        "us-east5",
        MODELS["vertex"],
        "streamRawPredict",
    )
    body = req.json()
    assert "model" not in body and body["stream"] is True
    assert body["anthropic_version"] == "vertex-2023-10-16"
    assert req.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert clouds.token.is_valid(req.headers["authorization"].removeprefix("Bearer "))


def test_anthropic_gets_every_beta(clouds: Clouds) -> None:
    with clouds.client() as client:
        client.beta.messages.create(
            model="anthropic/claude", max_tokens=5, messages=HELLO, betas=MIXED_BETAS
        )
    sent = clouds.anthropic.requests_to("/v1/messages")[-1].headers["anthropic-beta"]
    assert sent == ",".join(MIXED_BETAS)


def test_bedrock_exception_frame_midstream_is_an_error_event(clouds: Clouds) -> None:
    clouds.bedrock.enqueue(
        bedrock_stream_reply(
            "text_stream.sse", exception=("modelStreamErrorException", "boom"), exception_after=3
        )
    )
    with (
        clouds.client() as client,
        pytest.raises(anthropic.APIStatusError) as e,
        client.messages.stream(model="bedrock/claude", max_tokens=5, messages=HELLO) as stream,
    ):
        stream.until_done()
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "api_error"
    assert "boom" in e.value.body["error"]["message"]


def test_bedrock_exception_before_first_event_is_an_http_error(clouds: Clouds) -> None:
    clouds.bedrock.enqueue(
        bedrock_stream_reply(
            "text_stream.sse", exception=("throttlingException", "slow down"), exception_after=0
        )
    )
    with (
        clouds.client() as client,
        pytest.raises(anthropic.RateLimitError) as e,
        client.messages.stream(model="bedrock/claude", max_tokens=5, messages=HELLO) as stream,
    ):
        stream.until_done()
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("status", "name", "exc", "error_type"),
    [
        (429, "ThrottlingException", anthropic.RateLimitError, "rate_limit_error"),
        (403, "AccessDeniedException", anthropic.PermissionDeniedError, "permission_error"),
        (400, "ValidationException", anthropic.BadRequestError, "invalid_request_error"),
        (429, "ModelNotReadyException", anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_bedrock_http_errors_in_anthropic_shape(
    clouds: Clouds, status: int, name: str, exc: type[Exception], error_type: str
) -> None:
    clouds.bedrock.enqueue(bedrock_error_reply(status, name, "the provider says no"))
    with clouds.client() as client, pytest.raises(exc) as e:
        client.messages.create(model="bedrock/claude", max_tokens=5, messages=HELLO)
    body = e.value.body  # type: ignore[attr-defined]
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert "the provider says no" in body["error"]["message"]


def test_bedrock_bad_signature_is_403(clouds: Clouds) -> None:
    with clouds.client() as client, pytest.raises(anthropic.PermissionDeniedError) as e:
        client.messages.create(model="badkeys/claude", max_tokens=5, messages=HELLO)
    assert isinstance(e.value.body, dict)
    assert "Signature" in e.value.body["error"]["message"]
    assert "wrong-secret" not in str(e.value.body)


def test_vertex_google_error_in_anthropic_shape(clouds: Clouds) -> None:
    clouds.vertex.enqueue(google_error_reply(429, "RESOURCE_EXHAUSTED", "Quota exceeded"))
    with clouds.client() as client, pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="vertex/claude", max_tokens=5, messages=HELLO)
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert "Quota exceeded" in e.value.body["error"]["message"]


@pytest.mark.parametrize("cloud", ["bedrock", "vertex"])
def test_count_tokens_answered_by_the_cloud(clouds: Clouds, cloud: str) -> None:
    with clouds.client() as client:
        result = client.messages.count_tokens(model=f"{cloud}/claude", messages=HELLO)
    assert result.input_tokens > 0
    if cloud == "bedrock":
        req = clouds.bedrock.requests_for("count-tokens")[-1]
        assert req.payload["messages"] == HELLO
    else:
        req = clouds.vertex.requests_for("rawPredict")[-1]
        assert req.model == "count-tokens"
        assert req.json()["model"] == MODELS["vertex"]


@pytest.mark.parametrize(
    ("account", "count_region"), [("vglobal", "us-east5"), ("vpinned", "europe-west1")]
)
def test_vertex_global_count_tokens_goes_to_a_region_that_serves_it(
    clouds: Clouds, account: str, count_region: str
) -> None:
    clouds.vertex.enqueue(fixture_reply("message.json"))
    with clouds.client() as client:
        counted = client.messages.count_tokens(model=f"{account}/claude", messages=HELLO)
        client.messages.create(model=f"{account}/claude", max_tokens=5, messages=HELLO)
    assert counted.input_tokens > 0
    count = clouds.vertex.requests_for("rawPredict")[-2]
    assert (count.model, count.region) == ("count-tokens", count_region)
    assert count.path.startswith(f"/v1/projects/fake-project/locations/{count_region}/")
    assert count.json()["model"] == MODELS["vertex"]
    create = clouds.vertex.requests_for("rawPredict")[-1]
    assert (create.model, create.region) == (MODELS["vertex"], "global")


def _row(clouds: Clouds, request_id: str) -> tuple[Any, ...]:
    import sqlite3
    import time

    for _ in range(100):
        db = sqlite3.connect(clouds.gw.usage_db)
        try:
            row = db.execute(
                "SELECT provider_model, input_tokens, output_tokens, cache_creation_input_tokens,"
                " cache_read_input_tokens, cost_usd FROM usage WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        finally:
            db.close()
        if row:
            return tuple(row)
        time.sleep(0.05)
    raise AssertionError(f"no usage row for {request_id}")


@pytest.mark.parametrize(("account", "factor"), [("bglobal", 1.0), ("bedrock", 1.1)])
def test_bedrock_profile_prefix_prices_the_usage_row(
    clouds: Clouds, account: str, factor: float
) -> None:
    from tests.fakes.bedrock_upstream import bedrock_message_reply

    clouds.bedrock.enqueue(bedrock_message_reply("message.json"))
    with clouds.client() as client:
        raw = client.messages.with_raw_response.create(
            model=f"{account}/claude", max_tokens=5, messages=HELLO
        )
    model, inp, out, cw, cr, usd = _row(clouds, raw.headers["request-id"])
    assert model.startswith("global." if account == "bglobal" else "us.")
    assert (inp, out, cw, cr) == (25, 15, 7, 11)
    # Sonnet 4.5: $3 / $15 / $3.75 / $0.30 per million at global., 10 % more at us.
    list_price = (25 * 3 + 15 * 15 + 7 * 3.75 + 11 * 0.30) / 1e6
    assert usd == pytest.approx(list_price * factor)


def test_bedrock_stream_usage_is_recorded(clouds: Clouds) -> None:
    import sqlite3
    import time

    clouds.bedrock.enqueue(bedrock_stream_reply("text_stream.sse"))
    with (
        clouds.client() as client,
        client.messages.stream(model="bedrock/claude", max_tokens=5, messages=HELLO) as stream,
    ):
        stream.until_done()
        rid = stream.response.headers["request-id"]
    row = None
    for _ in range(100):
        db = sqlite3.connect(clouds.gw.usage_db)
        try:
            row = db.execute(
                "SELECT provider, input_tokens, output_tokens, status FROM usage"
                " WHERE request_id = ?",
                (rid,),
            ).fetchone()
        finally:
            db.close()
        if row:
            break
        time.sleep(0.05)
    assert row == ("bedrock", 25, 15, 200)


def test_gateway_starts_with_an_unusable_service_account(tmp_path: Path) -> None:
    bad = tmp_path / "sa.json"
    bad.write_text("{}")
    providers = {
        "vertex": {
            "type": "vertex",
            "project": "p",
            "region": "us-east5",
            "base_url": "http://127.0.0.1:9/v1",
            "credentials_file": str(bad),
            "models": {"claude": "c"},
        }
    }
    gw = start_gateway(tmp_path, base_config(tmp_path, providers))
    try:
        with (
            anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0) as client,
            pytest.raises(anthropic.InternalServerError) as e,
        ):
            client.messages.create(model="vertex/claude", max_tokens=5, messages=HELLO)
        assert e.value.status_code == 502
        assert "'vertex'" in str(e.value.body)
        assert "provider failed to start" in gw.log()
    finally:
        gw.stop()
