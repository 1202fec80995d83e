"""Virtual models end to end through the official Anthropic SDK: fallbacks, the first-chunk
gate, retries, timeouts, the deadline, the final error, headers and usage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY
from tests.fakes.anthropic_upstream import (
    WIRE_DIR,
    fixture_reply,
    hang_reply,
    slow_reply,
    sse_events,
    sse_reply,
    stream_error_reply,
)
from tests.gateway_env import raw_request
from tests.routing_env import (
    HELLO,
    PRIMARY_MODEL,
    SECONDARY_MODEL,
    RoutingEnv,
    make_routing_env,
)

PING = ("ping", {"type": "ping"})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingEnv]:
    yield from make_routing_env(tmp_path_factory.mktemp("routing"))


def fixture_events(name: str) -> tuple[bytes, ...]:
    return sse_events((WIRE_DIR / name).read_text())


def post(env: RoutingEnv, body: dict, key: str = ALICE_KEY, **headers: str):  # type: ignore[no-untyped-def,type-arg]
    return raw_request(
        env.gw.url + "/v1/messages",
        json.dumps(body).encode(),
        {"x-api-key": key, "content-type": "application/json", **headers},
    )


def test_a_529_on_the_first_target_falls_back_to_the_second(env: RoutingEnv) -> None:
    env.primary.enqueue(fixture_reply("error_529.json"))
    p, s = len(env.primary.requests), len(env.secondary.requests)
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model="claude", max_tokens=20, messages=HELLO, extra_body={"top_k": 3}
        )
    msg = raw.parse()
    assert msg.content[0].text == "echo: Hello"  # type: ignore[union-attr]
    assert raw.headers["x-llmrelay-model"] == "secondary/claude"
    assert raw.headers["x-llmrelay-attempts"] == "2"
    # Each attempt started from the client's body, with its own target's model id.
    first, second = env.primary.requests[p].json(), env.secondary.requests[s].json()
    assert first["model"] == PRIMARY_MODEL and second["model"] == SECONDARY_MODEL
    assert first["top_k"] == second["top_k"] == 3
    row = env.usage_row(raw.headers["request-id"])
    assert (row["model"], row["provider"], row["provider_model"]) == (
        "claude",
        "secondary",
        SECONDARY_MODEL,
    )
    assert row["status"] == 200 and row["attempts"] == 2
    log = row["attempt_log"]
    assert [(a["target"], a["status"], a["error_type"]) for a in log] == [
        ("primary/claude", 529, "overloaded_error"),
        ("secondary/claude", 200, None),
    ]
    assert all(a["latency_s"] >= 0 for a in log)
    assert '"msg":"attempt failed"' in env.gw.log()


def test_a_529_falls_back_when_streaming(env: RoutingEnv) -> None:
    env.primary.enqueue(fixture_reply("error_529.json"))
    env.secondary.enqueue(fixture_reply("text_stream.sse"))
    with (
        env.anthropic() as client,
        client.messages.stream(model="claude", max_tokens=20, messages=HELLO) as stream,
    ):
        text = "".join(stream.text_stream)
        headers = stream.response.headers
    assert text and headers["x-llmrelay-model"] == "secondary/claude"
    assert headers["x-llmrelay-attempts"] == "2"
    row = env.usage_row(headers["request-id"])
    assert row["stream"] == 1 and row["attempts"] == 2 and row["output_tokens"] > 0


def test_overloaded_first_event_falls_back_and_the_client_sees_only_the_second_stream(
    env: RoutingEnv,
) -> None:
    env.primary.enqueue(stream_error_reply(529, "Overloaded", after=[PING]))
    env.secondary.enqueue(fixture_reply("text_stream.sse"))
    status, headers, body = post(
        env, {"model": "claude", "max_tokens": 20, "stream": True, "messages": HELLO}
    )
    assert status == 200
    assert body == b"".join(fixture_events("text_stream.sse"))  # byte for byte
    assert headers["x-llmrelay-model"] == "secondary/claude"
    row = env.usage_row(headers["request-id"])
    assert [a["error_type"] for a in row["attempt_log"]] == ["overloaded_error", None]
    assert row["attempt_log"][0]["status"] == 529 and row["error_type"] is None


def test_the_same_stream_through_the_sdk_after_a_gate_failure(env: RoutingEnv) -> None:
    env.primary.enqueue(stream_error_reply(529))
    env.secondary.enqueue(fixture_reply("tool_use_stream.sse"))
    with (
        env.anthropic() as client,
        client.messages.stream(model="claude", max_tokens=20, messages=HELLO) as stream,
    ):
        events = [e.type for e in stream]
        final = stream.get_final_message()
    env.secondary.enqueue(fixture_reply("tool_use_stream.sse"))
    with (
        env.anthropic() as client,
        client.messages.stream(model="secondary/claude", max_tokens=20, messages=HELLO) as direct,
    ):
        assert events == [e.type for e in direct]
        assert final == direct.get_final_message()


def test_a_first_event_that_does_not_arrive_in_time_falls_back(env: RoutingEnv) -> None:
    events = [PING, *[(e, {"type": e}) for e in ("message_start",)]]
    env.primary.enqueue(sse_reply(events, delay_s=3))  # a ping at once, then nothing for 3 s
    env.secondary.enqueue(fixture_reply("text_stream.sse"))
    status, headers, body = post(
        env, {"model": "claude", "max_tokens": 20, "stream": True, "messages": HELLO}
    )
    assert status == 200 and body == b"".join(fixture_events("text_stream.sse"))
    row = env.usage_row(headers["request-id"])
    first = row["attempt_log"][0]
    assert (first["target"], first["status"], first["error_type"]) == (
        "primary/claude",
        504,
        "timeout_error",
    )
    assert env.primary.wait_for_disconnect(5)  # the gateway let go of the slow stream
    assert "sent no first content within 0.75s (first_token_timeout_s)" in env.gw.log()


def test_an_answer_that_does_not_arrive_in_time_falls_back(env: RoutingEnv) -> None:
    env.primary.enqueue(slow_reply(3, fixture_reply("message.json")))
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model="claude", max_tokens=20, messages=HELLO
        )
    assert raw.headers["x-llmrelay-model"] == "secondary/claude"
    row = env.usage_row(raw.headers["request-id"])
    assert row["attempt_log"][0]["error_type"] == "timeout_error"
    assert "sent no answer within 1.5s (timeout_s)" in env.gw.log()


def test_retry_after_is_honoured_on_the_same_target(env: RoutingEnv) -> None:
    start = len(env.primary.requests)
    throttled = fixture_reply("error_429.json", headers={"retry-after-ms": "400"})
    env.primary.enqueue(throttled)
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model="claude-retry", max_tokens=20, messages=HELLO
        )
    assert raw.headers["x-llmrelay-model"] == "primary/claude"
    assert raw.headers["x-llmrelay-attempts"] == "2"
    first, second = env.primary.requests[start : start + 2]
    assert second.at - first.at >= 0.4


def test_a_retry_after_beyond_the_cap_moves_on_at_once(env: RoutingEnv) -> None:
    start = len(env.primary.requests)
    env.primary.enqueue(fixture_reply("error_429.json", headers={"retry-after": "60"}))
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model="claude-retry", max_tokens=20, messages=HELLO
        )
    assert raw.headers["x-llmrelay-model"] == "secondary/claude"
    assert env.messages_to(env.primary, start) == 1  # not retried


def test_all_throttled_returns_429_with_the_shortest_retry_after(env: RoutingEnv) -> None:
    env.primary.enqueue(fixture_reply("error_429.json", headers={"retry-after": "7"}))
    env.secondary.enqueue(fixture_reply("error_429.json", headers={"retry-after": "3"}))
    with env.anthropic() as client, pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="claude", max_tokens=20, messages=HELLO)
    headers = e.value.response.headers
    assert headers["retry-after"] == "3"
    assert headers["x-llmrelay-model"] == "secondary/claude"
    assert headers["x-llmrelay-attempts"] == "2"
    assert isinstance(e.value.body, dict) and e.value.body["error"]["type"] == "rate_limit_error"
    assert "all attempts failed" in env.gw.log()


def test_when_every_target_fails_the_last_error_is_returned(env: RoutingEnv) -> None:
    env.primary.enqueue(fixture_reply("error_529.json"))
    env.secondary.enqueue(fixture_reply("error_500.json"))
    with env.anthropic() as client, pytest.raises(anthropic.InternalServerError) as e:
        client.messages.create(model="claude", max_tokens=20, messages=HELLO)
    assert e.value.status_code == 500
    row = env.usage_row(e.value.response.headers["request-id"])
    assert (row["status"], row["error_type"], row["provider"], row["attempts"]) == (
        500,
        "api_error",
        "secondary",
        2,
    )


def test_an_error_not_in_fallback_on_returns_at_once(env: RoutingEnv) -> None:
    before = env.messages_to(env.secondary)
    env.primary.enqueue(fixture_reply("error_400.json"))
    with env.anthropic() as client, pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="claude", max_tokens=20, messages=HELLO)
    assert e.value.response.headers["x-llmrelay-attempts"] == "1"
    assert e.value.response.headers["x-llmrelay-model"] == "primary/claude"
    assert env.messages_to(env.secondary) == before


def test_an_error_after_the_first_forwarded_event_becomes_an_error_event(env: RoutingEnv) -> None:
    before = env.messages_to(env.secondary)
    head = list(fixture_events("text_stream.sse")[:3])
    error = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    env.primary.enqueue(sse_reply("".join(b.decode() for b in [*head, error])))
    status, headers, body = post(
        env, {"model": "claude", "max_tokens": 20, "stream": True, "messages": HELLO}
    )
    assert status == 200 and body == b"".join(head) + error
    assert env.messages_to(env.secondary) == before  # too late to fall back
    row = env.usage_row(headers["request-id"])
    assert row["error_type"] == "overloaded_error" and row["attempts"] == 1


def test_a_stream_that_stalls_after_its_first_event_ends_with_an_error_event(
    env: RoutingEnv,
) -> None:
    head = list(fixture_events("text_stream.sse")[:2])
    env.primary.enqueue(sse_reply("".join(b.decode() for b in head), hang_after=True))
    with (
        env.anthropic() as client,
        pytest.raises(anthropic.APIStatusError) as e,
        client.messages.stream(model="claude", max_tokens=20, messages=HELLO) as stream,
    ):
        stream.until_done()
    assert isinstance(e.value.body, dict) and e.value.body["error"]["type"] == "timeout_error"


def test_the_overall_deadline_holds(env: RoutingEnv) -> None:
    before = env.messages_to(env.secondary)
    env.primary.enqueue(hang_reply())
    started = time.monotonic()
    with env.anthropic() as client, pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="claude-deadline", max_tokens=20, messages=HELLO)
    assert e.value.status_code == 504
    assert isinstance(e.value.body, dict) and "(deadline_s)" in e.value.body["error"]["message"]
    assert e.value.response.headers["x-llmrelay-attempts"] == "1"
    assert env.messages_to(env.secondary) == before  # no time was left for it
    assert time.monotonic() - started < 30  # not the per-attempt timeout_s
    assert env.primary.wait_for_disconnect(5)


def test_a_provider_that_is_down_falls_back(env: RoutingEnv) -> None:
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model="claude-dead", max_tokens=20, messages=HELLO
        )
    assert raw.headers["x-llmrelay-model"] == "secondary/claude"
    row = env.usage_row(raw.headers["request-id"])
    assert row["attempt_log"][0]["status"] == 502


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_to_an_openai_target_goes_through_translation(
    env: RoutingEnv, stream: bool
) -> None:
    env.primary.enqueue(fixture_reply("error_529.json"))
    with env.anthropic() as client:
        if stream:
            with client.messages.stream(model="claude-gpt", max_tokens=20, messages=HELLO) as s:
                text = "".join(s.text_stream)
                headers = s.response.headers
        else:
            raw = client.messages.with_raw_response.create(
                model="claude-gpt", max_tokens=20, messages=HELLO
            )
            text, headers = raw.parse().content[0].text, raw.headers  # type: ignore[union-attr]
    assert text == "echo: Hello"
    assert headers["x-llmrelay-model"] == "openai/gpt"
    assert env.gpt.chat_requests()[-1].json()["model"] == "gpt-4o-mini"


def test_weights_spread_calls_end_to_end(env: RoutingEnv) -> None:
    body = {"model": "spread", "max_tokens": 5, "messages": HELLO}
    served = [post(env, body)[1]["x-llmrelay-model"] for _ in range(300)]
    share = served.count("m1/echo") / len(served)
    assert set(served) == {"m1/echo", "m2/echo"}
    assert 0.65 < share < 0.85, share  # configured 3:1


def test_rules_route_by_key_and_by_metadata(env: RoutingEnv) -> None:
    body = {"model": "spread", "max_tokens": 5, "messages": HELLO}
    served = {post(env, body, key=BOB_KEY)[1]["x-llmrelay-model"] for _ in range(10)}
    assert served == {"m2/echo"}
    status, headers, _ = post(
        env, {**body, "model": "claude"}, **{"x-llmrelay-metadata": '{"tier": "batch"}'}
    )
    assert status == 200 and headers["x-llmrelay-model"] == "m1/echo"
    status, _, raw = post(env, body, **{"x-llmrelay-metadata": "tier=batch"})
    assert status == 400 and b"x-llmrelay-metadata" in raw


def test_virtual_models_are_listed(env: RoutingEnv) -> None:
    with env.anthropic() as client:
        ids = [m.id for m in client.models.list(limit=100)]
        assert client.models.retrieve("claude").id == "claude"
    assert "primary/claude" in ids and "claude" in ids and "spread" in ids


def test_mock_accounts_demonstrate_the_gate(env: RoutingEnv) -> None:
    # The README's example: a mock account set to fail stands for an overloaded primary.
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.create(model="echo", max_tokens=20, messages=HELLO)
        with client.messages.stream(model="echo", max_tokens=20, messages=HELLO) as s:
            text = "".join(s.text_stream)
            headers = s.response.headers
    assert (
        raw.headers["x-llmrelay-model"] == "m1/echo" and raw.headers["x-llmrelay-attempts"] == "2"
    )
    assert text == "mock echo: Hello" and headers["x-llmrelay-model"] == "m1/echo"


def test_count_tokens_on_a_virtual_model(env: RoutingEnv) -> None:
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.count_tokens(model="claude", messages=HELLO)
    assert raw.parse().input_tokens > 0
    assert raw.headers["x-llmrelay-model"] == "primary/claude"


def test_account_model_names_keep_one_attempt_and_no_gate(env: RoutingEnv) -> None:
    before = env.messages_to(env.secondary)
    env.primary.enqueue(fixture_reply("error_529.json"))
    with env.anthropic() as client, pytest.raises(anthropic.OverloadedError) as e:
        client.messages.create(model="primary/claude", max_tokens=20, messages=HELLO)
    assert e.value.response.headers["x-llmrelay-model"] == "primary/claude"
    assert e.value.response.headers["x-llmrelay-attempts"] == "1"
    # A stream opening with an error event is relayed as it came: no gate, no fallback.
    env.primary.enqueue(stream_error_reply(529))
    status, _, body = post(
        env, {"model": "primary/claude", "max_tokens": 20, "stream": True, "messages": HELLO}
    )
    assert status == 200 and body.startswith(b"event: error")
    assert env.messages_to(env.secondary) == before


def test_no_attempt_is_started_after_the_client_went_away(env: RoutingEnv) -> None:
    p, s = len(env.primary.requests), len(env.secondary.requests)
    env.primary.enqueue(fixture_reply("error_429.json", headers={"retry-after-ms": "1500"}))
    with env.anthropic(timeout=0.5) as client, pytest.raises(anthropic.APITimeoutError):
        client.messages.create(model="claude-retry", max_tokens=20, messages=HELLO)
    time.sleep(2)  # the gateway's wait for the retry is over by now
    assert env.messages_to(env.primary, p) == 1 and env.messages_to(env.secondary, s) == 0
    row = [r for r in env.usage_rows() if r["model"] == "claude-retry"][-1]
    assert (row["status"], row["error_type"], row["provider"]) == (
        499,
        "client_disconnected",
        "primary",
    )
