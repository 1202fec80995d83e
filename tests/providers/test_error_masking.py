"""A provider's error body never carries a credential back: the ones the gateway sent
it, and anything shaped like a known key format, come out masked. Successful answers are
relayed untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmrelay.providers.base import Provider
from llmrelay.providers.http import mask_secrets
from tests.fakes.anthropic_upstream import (
    FakeAnthropic,
    error_body,
    json_reply,
    stream_error_reply,
)
from tests.fakes.bedrock_upstream import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    FakeBedrock,
    bedrock_error_reply,
)
from tests.fakes.openai_upstream import FakeOpenAI, error_reply
from tests.fakes.vertex_upstream import FakeGoogleToken, FakeVertex, google_error_reply

from .helpers import chat, config, messages, read_all, with_provider

UPSTREAM_KEY = "sk-ant-api03-UpstreamSecret_0123456789-abcdef"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("invalid x-api-key: sk-ant-api03-abcdefghij_KLM-nop", "invalid x-api-key: sk-ant-***"),
        ("gateway key sk-llmrelay-AbCdEf0123456789 refused", "gateway key sk-llmrelay-*** refused"),
        ("openai key sk-proj-0123456789abcdefABCDEF", "openai key sk-***"),
        ("ids AKIAIOSFODNN7EXAMPLE ASIAIOSFODNN7EXAMPLE", "ids AKIA*** ASIA***"),
        ("google AIzaSyA1234567890abcdefghijklmnopqrstu", "google AIza***"),
        ("token ya29.a0AfH6SMBx-abc_def.ghi", "token ya29.***"),
        ("Authorization: Bearer abc123def456ghi", "Authorization: Bearer ***"),
        # Words that only look like the start of a key stay as they are.
        ("a risk-assessment-documentation-task", "a risk-assessment-documentation-task"),
        ("Bearer authentication failed", "Bearer authentication failed"),
    ],
)
def test_key_shapes_are_masked(text: str, masked: str) -> None:
    assert mask_secrets(text.encode()) == masked.encode()


def test_the_credentials_sent_are_masked_whatever_their_shape() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    body = json.dumps({"message": f"bad {secret}"}) + json.dumps(secret).replace("/", "\\/")
    out = mask_secrets(body.encode(), [secret, "short"])
    assert secret.encode() not in out
    assert b"K7MDENG" not in out
    assert out.count(b"***") == 2


def _anthropic(fake: FakeAnthropic) -> object:
    return config(type="anthropic", base_url=fake.url, api_key=UPSTREAM_KEY, models={"m": "m"})


def _echo(key: str) -> str:
    return f"invalid x-api-key: {key} (and an old one, sk-ant-api03-OldKey_abcdefghijkl)"


def test_an_anthropic_error_echoing_the_key_is_masked_read_or_streamed() -> None:
    with FakeAnthropic() as fake:
        fake.enqueue(
            json_reply(error_body(401, _echo(UPSTREAM_KEY)), 401),
            json_reply(error_body(401, _echo(UPSTREAM_KEY)), 401),
        )

        async def both(p: Provider) -> tuple[bytes, bytes]:
            _, read = await read_all(p, messages())
            up = await p.send(messages(stream=True))
            try:
                chunks = b"".join([c async for c in up.iter_chunks()])
            finally:
                up.close()
            return read, chunks

        read, chunks = with_provider(_anthropic(fake), both)
    for body in (read, chunks):
        assert UPSTREAM_KEY.encode() not in body
        assert b"OldKey" not in body
        assert json.loads(body)["error"]["message"] == (
            "invalid x-api-key: sk-ant-*** (and an old one, sk-ant-***)"
        )


def test_an_error_event_in_a_stream_is_masked_and_the_rest_is_untouched() -> None:
    text = f"quoting a key is fine in an answer: {UPSTREAM_KEY}"
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    with FakeAnthropic() as fake:
        fake.enqueue(
            stream_error_reply(
                529, f"overloaded; your key {UPSTREAM_KEY}", after=[("content_block_delta", delta)]
            ),
            json_reply({"type": "message", "content": [{"type": "text", "text": text}]}),
        )

        async def both(p: Provider) -> tuple[bytes, bytes]:
            _, streamed = await read_all(p, messages(stream=True))
            _, answer = await read_all(p, messages())
            return streamed, answer

        streamed, answer = with_provider(_anthropic(fake), both)
    events = [e for e in streamed.split(b"\n\n") if e]
    assert UPSTREAM_KEY.encode() in events[0]  # the model's text, relayed as it came
    assert UPSTREAM_KEY.encode() not in events[1]
    assert b"your key sk-ant-***" in events[1]
    assert UPSTREAM_KEY.encode() in answer  # a 200 answer is never rewritten


def test_an_error_event_in_a_stream_read_whole_is_masked() -> None:
    # A stream sent to a request that did not ask for one is read whole, and the gateway
    # quotes its start in a 502: read() masked only error statuses, so the key went out in
    # that message (found by the ingress fuzz).
    secret = "upstream-secret-without-a-shape-0123"
    with FakeAnthropic() as fake:
        fake.enqueue(stream_error_reply(529, f"overloaded; your key {secret}"))
        cfg = config(type="anthropic", base_url=fake.url, api_key=secret, models={"m": "m"})
        status, body = with_provider(cfg, lambda p: read_all(p, messages()))
    assert status == 200
    assert secret.encode() not in body
    assert b"your key ***" in body


def test_an_openai_error_echoing_the_bearer_token_is_masked() -> None:
    key = "sk-proj-UpstreamSecret0123456789abcdef"
    with FakeOpenAI() as fake:
        fake.enqueue(error_reply(401, f"Incorrect API key provided: {key}. Bearer {key}"))
        cfg = config(type="openai", base_url=fake.url + "/v1", api_key=key, models={"m": "m"})
        status, body = with_provider(cfg, lambda p: read_all(p, chat()))
    assert status == 401
    assert key.encode() not in body
    assert b"Incorrect API key provided: sk-***. Bearer sk-***" in body


def test_an_azure_error_echoing_the_api_key_is_masked() -> None:
    key = "0123456789abcdef0123456789abcdef"  # Azure keys have no recognisable shape
    with FakeOpenAI() as fake:
        fake.enqueue(error_reply(401, f"Access denied: api-key {key} is invalid"))
        cfg = config(type="azure_openai", endpoint=fake.url, api_key=key, models={"m": "m"})
        status, body = with_provider(cfg, lambda p: read_all(p, chat()))
    assert status == 401
    assert key.encode() not in body
    assert b"api-key *** is invalid" in body


def test_a_bedrock_error_echoing_the_secret_key_is_masked() -> None:
    with FakeBedrock() as fake:
        fake.enqueue(
            bedrock_error_reply(
                403, "AccessDeniedException", f"key {TEST_ACCESS_KEY} secret {TEST_SECRET_KEY}"
            )
        )
        cfg = config(
            type="bedrock",
            region="us-east-1",
            endpoint_url=fake.url,
            access_key_id=TEST_ACCESS_KEY,
            secret_access_key=TEST_SECRET_KEY,
            models={"m": "m"},
        )
        status, body = with_provider(cfg, lambda p: read_all(p, messages()))
    assert status == 403
    assert TEST_SECRET_KEY.encode() not in body
    assert TEST_ACCESS_KEY.encode() not in body
    assert b"key AKIA*** secret ***" in body


def test_a_vertex_error_echoing_the_access_token_is_masked(tmp_path: Path) -> None:
    with FakeGoogleToken() as tokens, FakeVertex(token_server=tokens) as fake:
        sa = tokens.write_service_account_file(tmp_path / "sa.json")
        cfg = config(
            type="vertex",
            project="p",
            region="us-east5",
            credentials_file=str(sa),
            base_url=fake.url + "/v1",
            models={"m": "m"},
        )

        async def call(p: Provider) -> tuple[int, bytes, str]:
            token = str(getattr(p, "_token").value)  # noqa: B009 - the token it will send
            fake.enqueue(google_error_reply(401, "UNAUTHENTICATED", f"token {token} expired"))
            status, body = await read_all(p, messages())
            return status, body, token

        status, body, token = with_provider(cfg, call)
    assert status == 401
    assert token.encode() not in body
    assert b"token *** expired" in body or b"token ya29.*** expired" in body
