"""Client headers that carry identity or credentials for other systems never reach a
provider, unless its ``forward_headers`` names them; ``drop_headers`` drops more."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from llmrelay.config import ConfigError
from llmrelay.config.loader import load_settings
from llmrelay.providers.headers import HeaderFilter, client_headers
from llmrelay.providers.registry import client_header_filter
from tests.conftest import ALICE_KEY, GatewayProcess, base_config
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_upstream import TEST_ACCESS_KEY, TEST_SECRET_KEY, FakeBedrock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.vertex_upstream import FakeGoogleToken, FakeVertex
from tests.gateway_env import raw_request

from .helpers import chat, config, messages, read_all, with_provider

#: What a client behind a load balancer, with cookies and other vendors' keys, sends.
DROPPED = [
    ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
    ("X-Real-IP", "203.0.113.7"),
    ("Forwarded", "for=203.0.113.7;proto=https"),
    ("X-Forwarded-Proto", "https"),
    ("X-Goog-Api-Key", "AIzaSyA-not-for-anthropic-0123456789abcdef"),
    ("X-Goog-User-Project", "billing-project"),
    ("X-Amz-Security-Token", "FwoGZXIvYXdzEXAMPLE"),
    ("X-Amz-Date", "20261206T000000Z"),
    ("OpenAI-Organization", "org-123"),
    ("OpenAI-Project", "proj_123"),
    ("Anthropic-Admin-Key", "sk-ant-admin01-xyz"),
    ("Cookie", "session=abc"),
    ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
    ("X-Api-Key", "sk-llmrelay-the-gateway-key"),
    ("Authorization", "Bearer sk-llmrelay-the-gateway-key"),
    ("X-Llmrelay-Metadata", '{"team": "a"}'),
    ("Connection", "keep-alive"),
    ("Content-Length", "123"),
]
KEPT = [
    ("anthropic-beta", "interleaved-thinking-2025-05-14"),
    ("anthropic-beta", "claude-code-20250219"),
    ("anthropic-version", "2023-06-01"),
    ("user-agent", "claude-cli/2.0"),
    ("x-claude-code-session-id", "s-1"),
    ("x-trace-id", "t-1"),
]
CLIENT = [DROPPED[0], KEPT[0], *DROPPED[1:9], *KEPT[1:], *DROPPED[9:]]


def _names(headers: dict[str, str]) -> set[str]:
    return set(headers)


def test_client_headers_drops_identity_credentials_and_hop_by_hop() -> None:
    headers = CIMultiDictProxy(CIMultiDict(CLIENT))
    assert client_headers(headers) == KEPT  # lower-cased, in order, repeats kept


def test_a_forwarded_name_passes_the_client_filter_but_never_the_gateways_key() -> None:
    headers = CIMultiDictProxy(CIMultiDict(CLIENT))
    rules = HeaderFilter(forward=["x-forwarded-for", "X-Amz-Date", "x-api-key"])
    kept = client_headers(headers, rules)
    assert ("x-forwarded-for", "203.0.113.7, 10.0.0.1") in kept
    assert ("x-amz-date", "20261206T000000Z") in kept
    assert not any(k in ("x-api-key", "authorization", "x-llmrelay-metadata") for k, _ in kept)


def test_client_header_filter_takes_every_accounts_forward_headers(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "auth: {keys: [{name: a, key: sk-test-0123456789}]}\n"
        "providers:\n"
        "  one: {type: anthropic, api_key: k1, models: {m: m}, forward_headers: [Cookie]}\n"
        "  two: {type: openai, models: {m: m}, forward_headers: [openai-organization]}\n"
        "  local: {type: mock, models: {m: m}}\n"
    )
    settings = load_settings(str(path))
    rules = client_header_filter(settings.providers.values())
    kept = dict(client_headers(CIMultiDictProxy(CIMultiDict(CLIENT)), rules))
    assert kept["cookie"] == "session=abc"
    assert kept["openai-organization"] == "org-123"
    assert "x-forwarded-for" not in kept


@pytest.mark.parametrize(
    ("field", "names", "expected"),
    [
        ("forward_headers", ["x-api-key"], "never forwarded"),
        ("forward_headers", ["Authorization"], "never forwarded"),
        ("forward_headers", ["x-llmrelay-metadata"], "never forwarded"),
        ("forward_headers", ["bad header"], "not an HTTP header name"),
        ("drop_headers", ["x-a:b"], "not an HTTP header name"),
    ],
)
def test_header_rules_are_checked_in_the_config(
    tmp_path: Path, field: str, names: list[str], expected: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "auth: {keys: [{name: a, key: sk-test-0123456789}]}\n"
        f"providers:\n  one: {{type: anthropic, api_key: k1, models: {{m: m}}, {field}: {names}}}\n"
    )
    with pytest.raises(ConfigError, match=expected):
        load_settings(str(path))


# -- at the provider, against fake upstreams ------------------------------------------------


def _anthropic(fake: FakeAnthropic, **rules: Any) -> Any:
    return config(
        type="anthropic",
        base_url=fake.url,
        api_key="sk-ant-up-0123456789",
        models={"m": "m"},
        **rules,
    )


def test_the_anthropic_provider_sends_none_of_the_dropped_headers() -> None:
    with FakeAnthropic() as fake:
        status, _ = with_provider(_anthropic(fake), lambda p: read_all(p, messages(CLIENT)))
    assert status == 200
    seen = fake.requests[0].headers
    for name, _ in DROPPED:
        if name.lower() in ("x-api-key", "content-length", "connection"):
            continue  # the provider's own
        assert name.lower() not in seen, name
    assert seen["x-api-key"] == "sk-ant-up-0123456789"
    assert seen["anthropic-beta"] == "interleaved-thinking-2025-05-14, claude-code-20250219"
    assert seen["x-claude-code-session-id"] == "s-1"
    assert seen["x-trace-id"] == "t-1"


def test_forward_headers_and_drop_headers_apply_per_provider() -> None:
    rules = {"forward_headers": ["x-forwarded-for", "cookie"], "drop_headers": ["x-trace-id"]}
    with FakeAnthropic() as fake:
        with_provider(_anthropic(fake, **rules), lambda p: read_all(p, messages(CLIENT)))
    seen = fake.requests[0].headers
    assert seen["x-forwarded-for"] == "203.0.113.7, 10.0.0.1"
    assert seen["cookie"] == "session=abc"
    assert "x-trace-id" not in seen
    assert "x-real-ip" not in seen


@pytest.mark.parametrize("kind", ["openai", "azure_openai"])
def test_the_openai_providers_send_none_of_the_dropped_headers(kind: str) -> None:
    with FakeOpenAI() as fake:
        if kind == "openai":
            cfg = config(
                type="openai",
                base_url=fake.url + "/v1",
                api_key="sk-up-0123456789abcdef",
                models={"m": "m"},
                forward_headers=["openai-organization"],
            )
        else:
            cfg = config(
                type="azure_openai",
                endpoint=fake.url,
                api_key="azure-key-0123456789",
                models={"m": "m"},
                forward_headers=["openai-organization"],
            )
        status, _ = with_provider(cfg, lambda p: read_all(p, chat(CLIENT)))
    assert status == 200
    seen = fake.requests[0].headers
    assert seen["openai-organization"] == "org-123"  # forwarded on purpose
    for name in (
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "cookie",
        "x-goog-api-key",
        "openai-project",
        "x-amz-security-token",
    ):
        assert name not in seen, name
    assert seen["x-trace-id"] == "t-1"


def test_bedrock_sends_only_the_headers_it_is_told_to_forward() -> None:
    with FakeBedrock() as fake:
        cfg = config(
            type="bedrock",
            region="us-east-1",
            endpoint_url=fake.url,
            access_key_id=TEST_ACCESS_KEY,
            secret_access_key=TEST_SECRET_KEY,
            models={"m": "m"},
            forward_headers=["x-trace-id"],
        )
        status, _ = with_provider(cfg, lambda p: read_all(p, messages(CLIENT)))
    assert status == 200
    seen = fake.requests[0].headers
    assert seen["x-trace-id"] == "t-1"  # signed along with the rest
    for name in (
        "x-forwarded-for",
        "cookie",
        "x-goog-api-key",
        "openai-organization",
        "x-claude-code-session-id",
    ):
        assert name not in seen, name


def test_vertex_forwards_its_short_list_and_the_accounts_forward_headers(tmp_path: Path) -> None:
    with FakeGoogleToken() as tokens, FakeVertex(token_server=tokens) as fake:
        sa = tokens.write_service_account_file(tmp_path / "sa.json")
        cfg = config(
            type="vertex",
            project="p",
            region="us-east5",
            credentials_file=str(sa),
            base_url=fake.url + "/v1",
            models={"m": "m"},
            forward_headers=["x-trace-id"],
            drop_headers=["user-agent"],
        )
        status, _ = with_provider(cfg, lambda p: read_all(p, messages(CLIENT)))
    assert status == 200
    seen = fake.requests[0].headers
    assert seen["x-trace-id"] == "t-1"
    assert seen["x-claude-code-session-id"] == "s-1"
    assert seen.get("user-agent") != "claude-cli/2.0"
    for name in ("x-forwarded-for", "cookie", "x-goog-api-key", "x-goog-user-project"):
        assert name not in seen, name


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize(
    ("path", "model"), [("/v1/messages", "ant/m"), ("/v1/chat/completions", "oai/m")]
)
def test_a_compressed_body_reaches_the_provider_decoded_without_its_content_encoding(
    gateway_factory: Callable[..., GatewayProcess],
    tmp_path: Path,
    encoding: str,
    path: str,
    model: str,
) -> None:
    # The server decodes the body; forwarding the client's content-encoding with it made
    # the provider decode plain JSON again, and fail (found by the ingress fuzz).
    hello = [{"role": "user", "content": "hi"}]
    body = json.dumps({"model": model, "max_tokens": 5, "messages": hello})
    data = gzip.compress(body.encode()) if encoding == "gzip" else zlib.compress(body.encode())
    with FakeAnthropic() as ant, FakeOpenAI() as oai:
        up = {"api_key": "k-0123456789", "models": {"m": "m"}}
        providers = {
            "ant": {"type": "anthropic", "base_url": ant.url, **up},
            "oai": {"type": "openai", "base_url": oai.url + "/v1", **up},
        }
        gw = gateway_factory(base_config(tmp_path, providers))
        headers = {"x-api-key": ALICE_KEY, "content-encoding": encoding}
        status, _, answer = raw_request(gw.url + path, data, headers)
        [seen] = ant.requests + oai.requests
    assert status == 200, answer
    assert "content-encoding" not in seen.headers
    assert seen.json()["messages"] == hello
