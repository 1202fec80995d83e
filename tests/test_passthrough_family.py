"""An SDK path's ``x-llmrelay-account`` must name an account of the path's own API
(issue 13): the OpenAI SDK's ``client.files`` with an Anthropic account, or the Anthropic
SDK's batches and files with an OpenAI account, is a 400 in the caller's envelope naming
the account's type and the header; nothing reaches a provider."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY
from tests.routing_env import RoutingEnv, make_routing_env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingEnv]:
    yield from make_routing_env(tmp_path_factory.mktemp("passthrough-family"))


def _sent(env: RoutingEnv) -> int:
    return len(env.primary.requests) + len(env.gpt.requests)


def test_the_openai_sdks_files_with_an_anthropic_account_is_a_400(env: RoutingEnv) -> None:
    before = _sent(env)
    client = openai.OpenAI(
        api_key=ALICE_KEY,
        base_url=env.gw.url + "/v1",
        max_retries=0,
        default_headers={"x-llmrelay-account": "primary"},
    )
    with pytest.raises(openai.BadRequestError) as e:
        client.files.list()
    message = e.value.message
    assert "x-llmrelay-account" in message and "type: anthropic" in message
    assert "/proxy/primary/" in message
    assert isinstance(e.value.body, dict) and e.value.body["type"] == "invalid_request_error"
    row = env.usage_row(e.value.response.headers["x-request-id"])
    assert (row["status"], row["provider"]) == (400, "primary")
    assert _sent(env) == before


@pytest.mark.parametrize("call", ["files", "batches"])
def test_the_anthropic_sdks_paths_with_an_openai_account_are_a_400(
    env: RoutingEnv, call: str
) -> None:
    before = _sent(env)
    client = anthropic.Anthropic(
        api_key=ALICE_KEY,
        base_url=env.gw.url,
        max_retries=0,
        default_headers={"x-llmrelay-account": "openai"},
    )
    with pytest.raises(anthropic.BadRequestError) as e:
        if call == "files":
            client.beta.files.list()
        else:
            client.messages.batches.list()
    assert "x-llmrelay-account: 'openai' is a type: openai account" in e.value.message
    assert isinstance(e.value.body, dict) and e.value.body["type"] == "error"
    assert _sent(env) == before


def test_the_right_family_still_goes_through(env: RoutingEnv) -> None:
    """The check refuses only the other family: an OpenAI account serves client.files."""
    client = openai.OpenAI(
        api_key=ALICE_KEY,
        base_url=env.gw.url + "/v1",
        max_retries=0,
        default_headers={"x-llmrelay-account": "openai"},
    )
    before = len(env.gpt.requests)
    try:
        client.files.list()
    except openai.APIStatusError as e:  # the fake may serve no files: its own answer
        assert e.status_code != 400, e.message
    assert [r.path for r in env.gpt.requests[before:]] == ["/v1/files"]
