"""``/proxy/{account}/...`` to OpenAI, Bedrock and Vertex accounts: each gets its own
credential (Bearer, SigV4 checked by the fake, a Google token), the gateway key never."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.bedrock_upstream import TEST_ACCESS_KEY, TEST_SECRET_KEY, FakeBedrock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.vertex_upstream import FakeGoogleToken, FakeVertex
from tests.gateway_env import raw_request

OPENAI_KEY = "sk-openai-upstream-0123456789abcdef"
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX_MODEL = "claude-sonnet-4-5@20250929"


@dataclass
class Clouds:
    openai: FakeOpenAI
    bedrock: FakeBedrock
    vertex: FakeVertex
    gw: GatewayProcess

    def row(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            db = sqlite3.connect(self.gw.usage_db)
            db.row_factory = sqlite3.Row
            try:
                found = db.execute("SELECT * FROM usage WHERE request_id = ?", (request_id,))
                row = found.fetchone()
            except sqlite3.OperationalError:
                row = None
            finally:
                db.close()
            if row is not None:
                return dict(row)
            time.sleep(0.05)
        raise AssertionError(f"no usage row for {request_id}")


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clouds]:
    tmp = tmp_path_factory.mktemp("proxy-clouds")
    fo, fb, token = FakeOpenAI(expected_api_key=OPENAI_KEY), FakeBedrock(), FakeGoogleToken()
    for f in (fo, fb, token):
        f.start()
    fv = FakeVertex(token_server=token)
    fv.start()
    sa_file = token.write_service_account_file(tmp / "sa.json")
    providers: dict[str, Any] = {
        "openai": {
            "type": "openai",
            "base_url": f"{fo.url}/v1",
            "api_key": OPENAI_KEY,
            "models": {"mini": "gpt-4o-mini"},
        },
        "azure": {
            "type": "azure_openai",
            "endpoint": fo.url,
            "api_key": OPENAI_KEY,
            "models": {"mini": "my-deployment"},
        },
        "bedrock": {
            "type": "bedrock",
            "region": "us-east-1",
            "endpoint_url": fb.url,
            "access_key_id": TEST_ACCESS_KEY,
            "secret_access_key": TEST_SECRET_KEY,
            "models": {"claude": BEDROCK_MODEL},
        },
        "badkeys": {
            "type": "bedrock",
            "region": "us-east-1",
            "endpoint_url": fb.url,
            "access_key_id": TEST_ACCESS_KEY,
            "secret_access_key": "wrong-secret",
            "models": {"claude": BEDROCK_MODEL},
        },
        "vertex": {
            "type": "vertex",
            "project": "fake-project",
            "region": "us-east5",
            "base_url": fv.url + "/v1",
            "credentials_file": str(sa_file),
            "models": {"claude": VERTEX_MODEL},
        },
    }
    try:
        gw = start_gateway(tmp, base_config(tmp, providers), "--log-level", "debug")
        try:
            yield Clouds(fo, fb, fv, gw)
        finally:
            gw.stop()
    finally:
        for f in (fo, fb, fv, token):
            f.stop()


def test_openai_sdk_through_the_proxy(clouds: Clouds) -> None:
    client = openai.OpenAI(api_key=ALICE_KEY, base_url=f"{clouds.gw.url}/proxy/openai")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    assert completion.usage is not None
    sent = clouds.openai.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert ALICE_KEY not in json.dumps(sent.headers)
    row = clouds.row(raw.headers["request-id"])
    assert row["provider"] == "openai"
    assert row["surface"] == "openai"
    assert row["tokens_known"] == 1
    assert row["input_tokens"] == completion.usage.prompt_tokens
    assert row["output_tokens"] == completion.usage.completion_tokens
    models = client.models.list()
    assert models.data
    assert clouds.openai.requests[-1].path == "/v1/models"


def test_openai_accounts_get_openai_error_envelopes(clouds: Clouds) -> None:
    client = openai.OpenAI(
        api_key="sk-wrong-gateway-key-0000", base_url=f"{clouds.gw.url}/proxy/openai"
    )
    with pytest.raises(openai.AuthenticationError) as e:
        client.models.list()
    assert isinstance(e.value.body, dict)
    assert "invalid gateway key" in str(e.value.body.get("message"))


def test_azure_gets_its_api_key_header(clouds: Clouds) -> None:
    body = {"messages": [{"role": "user", "content": "hi azure"}]}
    status, headers, raw = raw_request(
        f"{clouds.gw.url}/proxy/azure/openai/deployments/my-deployment/chat/completions"
        "?api-version=2024-10-21",
        json.dumps(body).encode(),
        {"authorization": f"Bearer {ALICE_KEY}", "content-type": "application/json"},
    )
    assert status == 200, raw
    sent = clouds.openai.requests[-1]
    assert (sent.path, sent.query) == (
        "/openai/deployments/my-deployment/chat/completions",
        "api-version=2024-10-21",
    )
    assert sent.headers["api-key"] == OPENAI_KEY
    assert "authorization" not in sent.headers
    assert json.loads(sent.body) == body
    assert clouds.row(headers["request-id"])["tokens_known"] == 1


def test_the_openai_sdks_files_path_goes_to_the_openai_wire_account(clouds: Clouds) -> None:
    # No anthropic-version: /v1/files goes to the key's one `type: openai` account (Azure
    # serves no /files there), or to the one x-llmrelay-account names.
    client = openai.OpenAI(
        api_key=ALICE_KEY,
        base_url=f"{clouds.gw.url}/v1",
        max_retries=0,
        default_headers={"x-llmrelay-account": "openai"},
    )
    with pytest.raises(openai.NotFoundError) as e:  # the fake has no Files API
        client.files.list()
    assert "Invalid URL (GET /v1/files)" in str(e.value)
    sent = clouds.openai.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    unnamed = openai.OpenAI(api_key=ALICE_KEY, base_url=f"{clouds.gw.url}/v1", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        unnamed.files.list()
    assert clouds.openai.requests[-1].path == "/v1/files"


def _invoke(url: str) -> tuple[int, dict[str, str], bytes]:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "hello bedrock"}],
    }
    return raw_request(
        url,
        json.dumps(body).encode(),
        {"authorization": f"Bearer {ALICE_KEY}", "content-type": "application/json"},
    )


def test_bedrock_invoke_is_signed_with_sigv4(clouds: Clouds) -> None:
    status, headers, raw = _invoke(f"{clouds.gw.url}/proxy/bedrock/model/{BEDROCK_MODEL}/invoke")
    assert status == 200, raw
    answer = json.loads(raw)
    assert answer["content"][0]["text"] == "echo: hello bedrock"
    sent = clouds.bedrock.requests[-1]
    # The fake verified the signature (a bad one is a 403, see below).
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert sent.operation == "invoke"
    assert sent.model_id == BEDROCK_MODEL
    assert ALICE_KEY not in json.dumps(sent.headers)
    row = clouds.row(headers["request-id"])
    assert row["provider"] == "bedrock"
    assert row["tokens_known"] == 1
    assert row["input_tokens"] == answer["usage"]["input_tokens"]


def test_bedrock_with_a_wrong_secret_gets_the_aws_403(clouds: Clouds) -> None:
    status, _, raw = _invoke(f"{clouds.gw.url}/proxy/badkeys/model/{BEDROCK_MODEL}/invoke")
    assert status == 403
    assert b"signature" in raw.lower()


def test_vertex_sdk_through_the_proxy(clouds: Clouds) -> None:
    client = anthropic.AnthropicVertex(
        region="us-east5",
        project_id="fake-project",
        access_token=ALICE_KEY,  # the gateway key: the gateway swaps in its Google token
        base_url=f"{clouds.gw.url}/proxy/vertex",
        max_retries=0,
    )
    raw = client.messages.with_raw_response.create(
        model=VERTEX_MODEL,
        max_tokens=32,
        messages=[{"role": "user", "content": "hello vertex"}],
        # anthropic 2.17's Vertex client defaults this to its API version ("2026-10-21"),
        # which the fake (like Vertex's docs) refuses; the passthrough sends the body as is.
        extra_body={"anthropic_version": "vertex-2023-10-16"},
    )
    message = raw.parse()
    assert message.content[0].text == "echo: hello vertex"  # type: ignore[union-attr]
    sent = clouds.vertex.requests[-1]
    assert sent.path.startswith("/v1/projects/fake-project/locations/us-east5/")
    assert sent.specifier == "rawPredict"
    assert sent.headers["authorization"] != f"Bearer {ALICE_KEY}"
    assert ALICE_KEY not in json.dumps(sent.headers)
    row = clouds.row(raw.headers["request-id"])
    assert row["provider"] == "vertex"
    assert row["tokens_known"] == 1
    assert row["output_tokens"] == message.usage.output_tokens
