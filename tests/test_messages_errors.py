"""Every error on /v1/messages has a defined status and Anthropic's envelope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.conftest import ALICE_KEY
from tests.fakes.anthropic_upstream import fixture_reply, hang_reply, json_reply, sse_reply
from tests.gateway_env import UPSTREAM_KEY, Env, make_env, raw_request

MODEL = "anthropic/claude-3-5"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from make_env(tmp_path_factory.mktemp("errors"), server={"max_request_body_mb": 1})


def post(env: Env, body: bytes, path: str = "/v1/messages") -> tuple[int, dict[str, str], dict]:  # type: ignore[type-arg]
    status, headers, raw = raw_request(
        env.gw.url + path, body, {"x-api-key": ALICE_KEY, "content-type": "application/json"}
    )
    return status, headers, json.loads(raw)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"model": "anthropic/claude-3-5", "max_tokens": ', "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b"", "not valid JSON"),
        (b'{"max_tokens": 5, "messages": []}', "model: expected a string"),
    ],
)
def test_bad_body_is_400_before_any_provider_call(env: Env, body: bytes, fragment: str) -> None:
    before = len(env.fake.requests)
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        status, headers, err = post(env, body, path)
        assert status == 400
        assert err["type"] == "error"
        assert err["error"]["type"] == "invalid_request_error"
        assert fragment in err["error"]["message"]
        assert headers["request-id"].startswith("req_")
    assert len(env.fake.requests) == before


def test_oversized_body_is_413(env: Env) -> None:
    body = json.dumps(
        {
            "model": MODEL,
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}],
        }
    )
    before = len(env.fake.requests)
    with env.client() as client, pytest.raises(anthropic.APIStatusError) as e:
        client.post("/v1/messages", body=json.loads(body), cast_to=object)
    assert e.value.status_code == 413
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "request_too_large"
    assert "1 MiB" in e.value.body["error"]["message"]
    assert len(env.fake.requests) == before


@pytest.mark.parametrize(
    ("fixture", "exc"),
    [
        ("error_400.json", anthropic.BadRequestError),
        ("error_429.json", anthropic.RateLimitError),
        ("error_500.json", anthropic.InternalServerError),
        ("error_529.json", anthropic.OverloadedError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_provider_errors_pass_through(
    env: Env, fixture: str, exc: type[anthropic.APIStatusError], stream: bool
) -> None:
    expected = json.loads((Path(__file__).parent / "wire/anthropic" / fixture).read_text())
    env.fake.enqueue(fixture_reply(fixture, headers={"retry-after": "7", "retry-after-ms": "7000"}))
    with env.client() as client, pytest.raises(exc) as e:
        if stream:
            with client.messages.stream(model=MODEL, max_tokens=5, messages=HELLO) as s:
                s.until_done()
        else:
            client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    assert e.value.body == expected
    assert e.value.response.headers["retry-after"] == "7"
    assert e.value.response.headers["retry-after-ms"] == "7000"
    assert e.value.response.headers["request-id"].startswith("req_")


def test_dead_provider_is_502_naming_the_account(env: Env) -> None:
    with env.client() as client, pytest.raises(anthropic.InternalServerError) as e:
        client.messages.create(model="dead/claude", max_tokens=5, messages=HELLO)
    assert e.value.status_code == 502
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "api_error"
    message = e.value.body["error"]["message"]
    assert "'dead'" in message and "could not be reached" in message
    assert UPSTREAM_KEY not in message


@pytest.mark.parametrize("stream", [False, True])
def test_slow_provider_is_504(env: Env, stream: bool) -> None:
    env.fake.enqueue(hang_reply())
    with env.client() as client, pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="slow/claude", max_tokens=5, messages=HELLO, stream=stream)
    assert e.value.status_code == 504
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "timeout_error"
    assert "'slow'" in e.value.body["error"]["message"]


def test_midstream_error_event_passes_through(env: Env) -> None:
    env.fake.enqueue(fixture_reply("error_midstream.sse"))
    with (
        env.client() as client,
        pytest.raises(anthropic.APIStatusError) as e,
        client.messages.stream(model=MODEL, max_tokens=5, messages=HELLO) as s,
    ):
        s.until_done()
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "overloaded_error"


def test_provider_stalling_midstream_ends_with_error_event(env: Env) -> None:
    # The provider sends message_start, then nothing (slow/* has a 0.5 s read timeout).
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "m",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 3, "output_tokens": 1},
                },
            },
        )
    ]
    env.fake.enqueue(sse_reply(events, hang_after=True))
    status, _headers, raw = raw_request(
        env.gw.url + "/v1/messages",
        json.dumps(
            {"model": "slow/claude", "max_tokens": 5, "stream": True, "messages": HELLO}
        ).encode(),
        {"x-api-key": ALICE_KEY},
    )
    assert status == 200
    text = raw.decode()
    assert text.startswith("event: message_start\n")
    assert text.endswith("\n\n")
    last = text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    assert json.loads(last.split("data: ", 1)[1])["error"]["type"] == "timeout_error"


@pytest.mark.parametrize(
    "body",
    [
        b"upstream proxy exploded",
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"detail": "upstream proxy exploded"}',
        b'"upstream proxy exploded"',
    ],
)
def test_provider_error_that_is_not_anthropics_envelope_reaches_the_client_in_it(
    env: Env, body: bytes
) -> None:
    # Relayed verbatim, a proxy's text or HTML page was the one error outside the envelope
    # (found by the ingress fuzz); its text is the message, its status kept.
    env.fake.enqueue(json_reply(body, status=503, headers={"content-type": "text/html"}))
    status, headers, raw = raw_request(
        env.gw.url + "/v1/messages",
        json.dumps({"model": MODEL, "max_tokens": 5, "messages": HELLO}).encode(),
        {"x-api-key": ALICE_KEY},
    )
    assert status == 503
    assert headers["content-type"] == "application/json"
    error = json.loads(raw)
    assert error["type"] == "error"
    assert error["request_id"] == headers["request-id"]
    assert error["error"]["type"] == "api_error"
    assert "exploded" in error["error"]["message"] or "502 Bad Gateway" in error["error"]["message"]


def test_provider_error_in_anthropics_envelope_passes_through_verbatim(env: Env) -> None:
    sent = (
        b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},'
        b'"request_id":"req_up"}'
    )
    env.fake.enqueue(json_reply(sent, status=529))
    status, _, raw = raw_request(
        env.gw.url + "/v1/messages",
        json.dumps({"model": MODEL, "max_tokens": 5, "messages": HELLO}).encode(),
        {"x-api-key": ALICE_KEY},
    )
    assert (status, raw) == (529, sent)


def test_anthropic_version_defaulted_when_client_sends_none(env: Env) -> None:
    env.fake.enqueue(fixture_reply("message.json"))
    status, headers, _raw = raw_request(
        env.gw.url + "/v1/messages",
        json.dumps({"model": MODEL, "max_tokens": 5, "messages": HELLO}).encode(),
        {"x-api-key": ALICE_KEY},
    )
    assert status == 200
    assert headers["request-id"].startswith("req_")
    assert env.fake.requests_to("/v1/messages")[-1].headers["anthropic-version"] == "2023-06-01"


def test_unknown_path_is_404_in_anthropic_shape(env: Env) -> None:
    status, _headers, raw = raw_request(env.gw.url + "/v1/nothing", b"{}", {"x-api-key": ALICE_KEY})
    assert status == 404
    assert json.loads(raw)["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("HEAD", "/"),
        ("HEAD", "/api/hello"),
        ("GET", "/api/hello"),
        ("GET", "/health"),
        ("GET", "/ready"),
    ],
)
def test_probes_answer_200(env: Env, method: str, path: str) -> None:
    status, _, _ = raw_request(env.gw.url + path, None, method=method)
    assert status == 200


def test_keys_never_logged_and_refusals_are_logged(env: Env) -> None:
    import time

    raw_request(env.gw.url + "/v1/messages", b"{}", {"x-api-key": "sk-not-a-key-000"})
    time.sleep(0.2)
    log = env.gw.log()
    assert '"request_id"' in log  # the debug log has request lines
    assert '"status":401' in log  # refused calls are logged too
    assert ALICE_KEY not in log
    assert UPSTREAM_KEY not in log
    for line in log.splitlines():
        assert isinstance(json.loads(line), dict), line


def test_non_utf8_key_is_401_not_500(env: Env) -> None:
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(env.gw.url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/messages")
        conn.putheader("x-api-key", b"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9")
        conn.putheader("content-length", "2")
        conn.endheaders(b"{}")
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 401
    assert body["error"]["type"] == "authentication_error"
    assert resp.getheader("request-id", "").startswith("req_")


def test_refused_calls_of_a_known_key_get_usage_rows(env: Env) -> None:
    post(env, b"[1]")
    status, headers, _ = post(env, b'{"model": "nope/none", "max_tokens": 5, "messages": []}')
    assert status == 404
    row = env.usage_row(headers["request-id"])
    assert (row["status"], row["error_type"], row["model"], row["key_name"]) == (
        404,
        "not_found_error",
        "nope/none",
        "alice",
    )


@pytest.mark.parametrize("path", ["/", "/api/hello", "/health", "/ready"])
def test_probes_carry_a_request_id(env: Env, path: str) -> None:
    method = "GET" if path != "/" else "HEAD"
    _, headers, _ = raw_request(env.gw.url + path, None, method=method)
    assert headers["request-id"].startswith("req_")


def test_mock_takes_integers_beyond_64_bits(env: Env) -> None:
    status, _, body = raw_request(
        env.gw.url + "/v1/messages",
        b'{"model": "local/echo", "max_tokens": 99999999999999999999999,'
        b' "messages": [{"role": "user", "content": "big"}]}',
        {"x-api-key": ALICE_KEY},
    )
    assert status == 200, body
    assert json.loads(body)["content"][0]["text"] == "mock echo: big"
