"""Per-request retry and timeout overrides (``x-llmrelay-retry``, ``x-llmrelay-timeout-ms``,
``x-llmrelay-ttft-timeout-ms``) through a real ``llmrelay serve`` and the official SDKs:
honoured within the key's allowance, clamped above it (and said so in
``x-llmrelay-overrides-clamped``), refused when they do not parse."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY
from tests.fakes.anthropic_upstream import error_body, fixture_reply, hang_reply, json_reply
from tests.gateway_env import Env, make_env

MODEL = "anthropic/claude-3-5"
HELLO = [{"role": "user", "content": "Hello"}]
#: alice's allowance; bob has the defaults (3 attempts, 600 s).
ALLOWANCE = {
    "max_attempts": 2,
    "retry_statuses": [429, 503],
    "max_timeout_ms": 300,
    "max_ttft_timeout_ms": 200,
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    keys = [
        {"name": "alice", "key": ALICE_KEY, "overrides": ALLOWANCE},
        {"name": "bob", "key": BOB_KEY},
    ]
    models = {"claude-v": {"targets": [{"model": MODEL}]}}
    yield from make_env(tmp_path_factory.mktemp("overrides"), auth={"keys": keys}, models=models)


@pytest.fixture(autouse=True)
def _clean(env: Env) -> Iterator[None]:
    yield
    env.fake.clear_replies()


def busy() -> object:
    return json_reply(error_body(503, "busy"), status=503)


def upstream_calls(env: Env) -> int:
    return len(env.fake.requests_to("/v1/messages"))


@pytest.mark.parametrize("model", [MODEL, "claude-v"])
def test_retry_header_retries_the_asked_status(env: Env, model: str) -> None:
    env.fake.enqueue(busy(), fixture_reply("message.json"))  # type: ignore[arg-type]
    before = upstream_calls(env)
    with env.client() as client:
        raw = client.messages.with_raw_response.create(
            model=model,
            max_tokens=5,
            messages=HELLO,
            extra_headers={"x-llmrelay-retry": "attempts=2; statuses=503"},
        )
    assert raw.status_code == 200
    assert raw.headers["x-llmrelay-attempts"] == "2"
    assert "x-llmrelay-overrides-clamped" not in raw.headers
    assert upstream_calls(env) - before == 2
    row = env.usage_row(raw.headers["request-id"])
    assert (row["status"], row["attempts"]) == (200, 2)


def test_without_the_header_a_route_is_tried_once(env: Env) -> None:
    env.fake.enqueue(busy(), fixture_reply("message.json"))  # type: ignore[arg-type]
    with env.client() as client, pytest.raises(anthropic.InternalServerError) as e:
        client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    assert e.value.status_code == 503
    assert e.value.response.headers["x-llmrelay-attempts"] == "1"


def test_attempts_above_the_allowance_are_clamped_and_said_so(env: Env) -> None:
    env.fake.enqueue(busy(), busy(), busy())  # type: ignore[arg-type]
    before = upstream_calls(env)
    with env.client() as client, pytest.raises(anthropic.InternalServerError) as e:
        client.messages.create(
            model=MODEL,
            max_tokens=5,
            messages=HELLO,
            extra_headers={"x-llmrelay-retry": "attempts=9; statuses=503,500"},
        )
    headers = e.value.response.headers
    assert e.value.status_code == 503
    assert headers["x-llmrelay-overrides-clamped"] == "retry.attempts=2, retry.statuses=503"
    assert headers["x-llmrelay-attempts"] == "2"
    assert upstream_calls(env) - before == 2
    row = env.usage_row(headers["request-id"])
    assert (row["status"], row["attempts"], row["error_type"]) == (503, 2, "api_error")


def test_timeout_above_the_allowance_is_clamped_to_it(env: Env) -> None:
    env.fake.enqueue(hang_reply())
    with env.client() as client, pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(
            model=MODEL,
            max_tokens=5,
            messages=HELLO,
            extra_headers={"x-llmrelay-timeout-ms": "999999"},
        )
    assert e.value.status_code == 504
    assert e.value.response.headers["x-llmrelay-overrides-clamped"] == "timeout-ms=300"
    assert "within 0.3s (timeout_s)" in str(e.value.body)
    row = env.usage_row(e.value.response.headers["request-id"])
    assert (row["status"], row["error_type"]) == (504, "timeout_error")


def test_ttft_timeout_bounds_a_streams_first_event(env: Env) -> None:
    env.fake.enqueue(hang_reply())
    with (
        env.client() as client,
        pytest.raises(anthropic.APIStatusError) as e,
        client.messages.stream(
            model=MODEL,
            max_tokens=5,
            messages=HELLO,
            extra_headers={"x-llmrelay-ttft-timeout-ms": "5000"},
        ) as stream,
    ):
        stream.until_done()
    assert e.value.status_code == 504
    assert e.value.response.headers["x-llmrelay-overrides-clamped"] == "ttft-timeout-ms=200"
    assert "no first content within 0.2s (first_token_timeout_s)" in str(e.value.body)


def test_an_allowance_wide_enough_changes_nothing_else(env: Env) -> None:
    env.fake.enqueue(fixture_reply("message.json"))
    with env.client(key=BOB_KEY) as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL,
            max_tokens=5,
            messages=HELLO,
            extra_headers={"x-llmrelay-timeout-ms": "60000", "x-llmrelay-retry": "3"},
        )
    assert raw.status_code == 200
    assert "x-llmrelay-overrides-clamped" not in raw.headers
    assert raw.headers["x-llmrelay-model"] == MODEL


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-llmrelay-retry", "lots"),
        ("x-llmrelay-retry", "attempts=0"),
        ("x-llmrelay-retry", "attempts=2; statuses=200"),
        ("x-llmrelay-retry", "attempts=2; when=always"),
        ("x-llmrelay-timeout-ms", "-5"),
        ("x-llmrelay-timeout-ms", "1.5"),
        ("x-llmrelay-ttft-timeout-ms", "9" * 300),
    ],
)
def test_a_header_that_does_not_parse_is_a_400_in_the_callers_shape(
    env: Env, name: str, value: str
) -> None:
    with env.client() as client, pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model=MODEL, max_tokens=5, messages=HELLO, extra_headers={name: value}
        )
    message = e.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith(f"{name}: expected")
    assert len(message) < 300
    row = env.usage_row(e.value.response.headers["request-id"])
    assert (row["status"], row["error_type"]) == (400, "invalid_request_error")
    oai = openai.OpenAI(api_key=ALICE_KEY, base_url=f"{env.gw.url}/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as o:
        oai.chat.completions.create(
            model=MODEL,
            messages=HELLO,  # type: ignore[arg-type]
            extra_headers={name: value},
        )
    assert o.value.code == "invalid_request_error"
    assert f"{name}: expected" in o.value.message
