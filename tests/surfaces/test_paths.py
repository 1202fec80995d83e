"""Paths a user trips on, through a real ``llmrelay serve`` and the official SDKs: a
``base_url`` that already ends in ``/v1``, a model fetched by id in each SDK's type, a
served path with the wrong method, an OpenAI endpoint the gateway does not serve, and an
unknown model in OpenAI's ``model_not_found``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import openai
import pytest
from anthropic.types import ModelInfo
from openai.types import Model

from tests.conftest import ALICE_KEY
from tests.fakes.anthropic_upstream import fixture_reply
from tests.gateway_env import PROVIDER_MODEL, Env, make_env, raw_request

MODEL = "anthropic/claude-3-5"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from make_env(tmp_path_factory.mktemp("paths"))


def oai(env: Env) -> openai.OpenAI:
    return openai.OpenAI(api_key=ALICE_KEY, base_url=f"{env.gw.url}/v1", max_retries=0)


def test_anthropic_sdk_base_url_ending_in_v1_is_served_as_v1(env: Env) -> None:
    env.fake.enqueue(fixture_reply("message.json"))
    with env.client(base_url=f"{env.gw.url}/v1") as client:
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=HELLO)
        msg = raw.parse()
        count = client.messages.count_tokens(model=MODEL, messages=HELLO)
        page = client.models.list()
    assert raw.http_request.url.path == "/v1/v1/messages"
    assert raw.headers["x-llmrelay-model"] == MODEL
    assert msg.content[0].type == "text" and msg.model == PROVIDER_MODEL
    assert env.fake.requests_to("/v1/messages")[-1].json()["model"] == PROVIDER_MODEL
    assert count.input_tokens > 0
    assert MODEL in [m.id for m in page.data]
    row = env.usage_row(raw.headers["request-id"])
    assert (row["status"], row["endpoint"], row["model"]) == (200, "messages", MODEL)


def test_models_retrieve_answers_in_each_sdks_type(env: Env) -> None:
    with env.client() as client:
        info = client.models.retrieve(MODEL)
    assert isinstance(info, ModelInfo)
    assert (info.id, info.type) == (MODEL, "model")
    model = oai(env).models.retrieve(MODEL)
    assert isinstance(model, Model)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "anthropic")
    assert model.created > 0
    # The OpenAI SDK under /openai gets the same.
    prefixed = openai.OpenAI(api_key=ALICE_KEY, base_url=f"{env.gw.url}/openai/v1")
    assert prefixed.models.retrieve(MODEL).owned_by == "anthropic"


def test_unknown_model_is_model_not_found_in_openai_and_not_found_in_anthropic(env: Env) -> None:
    client = oai(env)
    with pytest.raises(openai.NotFoundError) as got:
        client.models.retrieve("nope/missing")
    assert got.value.code == "model_not_found"
    assert got.value.type == "invalid_request_error"
    assert "nope/missing" in got.value.message
    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="nope/missing", messages=HELLO)  # type: ignore[arg-type]
    assert chat.value.code == "model_not_found"
    row = env.usage_row(chat.value.response.headers["request-id"])
    assert (row["status"], row["error_type"]) == (404, "not_found_error")
    with env.client() as ant, pytest.raises(anthropic.NotFoundError) as a:
        ant.models.retrieve("nope/missing")
    assert a.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("method", "path", "headers", "allow", "envelope"),
    [
        ("GET", "/v1/messages", {"anthropic-version": "2023-06-01"}, "POST", "anthropic"),
        ("PUT", "/v1/v1/messages/count_tokens", {}, "POST", "anthropic"),
        ("GET", "/v1/chat/completions", {}, "POST", "openai"),
        ("POST", "/v1/models", {}, "GET, HEAD", "openai"),
        ("DELETE", "/anthropic/v1/models/x", {}, "GET, HEAD", "anthropic"),
    ],
)
def test_known_path_with_wrong_method_is_405_with_allow(
    env: Env, method: str, path: str, headers: dict[str, str], allow: str, envelope: str
) -> None:
    status, got, body = raw_request(
        env.gw.url + path, b"{}" if method != "GET" else None, headers, method
    )
    assert status == 405
    assert got["allow"] == allow
    err = json.loads(body)
    assert f"{method} {path}" in err["error"]["message"]
    if envelope == "openai":
        assert err["error"]["type"] == "invalid_request_error" and "code" in err["error"]
    else:
        assert err["type"] == "error" and err["request_id"] == got["request-id"]


def test_openai_endpoint_not_served_is_not_found_in_openai_envelope(env: Env) -> None:
    client = oai(env)
    with pytest.raises(openai.NotFoundError) as emb:
        client.embeddings.create(model=MODEL, input="hi")
    assert emb.value.code == "unknown_url"
    assert emb.value.type == "invalid_request_error"
    assert "POST /v1/embeddings" in emb.value.message
    assert emb.value.response.headers["x-request-id"].startswith("req_")
    with pytest.raises(openai.NotFoundError) as img:
        client.images.generate(prompt="a cat", model="dall-e-3")
    assert img.value.code == "unknown_url"


def test_unserved_path_of_an_anthropic_client_stays_in_anthropic_envelope(env: Env) -> None:
    status, _, body = raw_request(
        # /v1/files and /v1/messages/batches are the passthrough's (test_passthrough.py).
        env.gw.url + "/v1/skills",
        None,
        {"anthropic-version": "2023-06-01"},
        "GET",
    )
    err = json.loads(body)
    assert status == 404 and err["type"] == "error"
    assert err["error"]["type"] == "not_found_error"


def test_long_unserved_path_is_echoed_clipped(env: Env) -> None:
    path = "/v1/embeddings/" + "x" * 4000
    status, _, body = raw_request(env.gw.url + path, b"{}", {})
    message = json.loads(body)["error"]["message"]
    assert status == 404
    assert len(message) < 400 and "x" * 4000 not in message
