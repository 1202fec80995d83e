"""OpenTelemetry traces, end to end: real gateways export to an in-test OTLP/HTTP receiver.

A call is one server span with one client span per provider attempt (fallbacks are
siblings), carrying the GenAI semantic-convention attributes and the gateway's own; a
client's ``traceparent`` is continued and the provider request carries the attempt's;
content stays off spans unless ``capture_content``; a dead or hanging collector never
fails a call, and a full queue is counted.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import openai
import pytest

from llmrelay.config import TracingConfig
from tests.conftest import (
    ALICE_KEY,
    GatewayProcess,
    base_config,
    free_port,
    start_gateway,
)
from tests.fakes.anthropic_upstream import FakeAnthropic, error_body, json_reply, sse_reply
from tests.fakes.openai_upstream import FakeOpenAI
from tests.obs.otlp_receiver import CLIENT, ERROR, SERVER, UNSET, OTLPReceiver, ReceivedSpan

HELLO = [{"role": "user", "content": "Hello there"}]
CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")


def _providers(fake: FakeAnthropic, quiet: FakeAnthropic, gpt: FakeOpenAI) -> dict[str, Any]:
    return {
        "anthropic": {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": "sk-ant-upstream",
            "models": {"claude": "claude-sonnet-4-6"},
        },
        "quiet": {
            "type": "anthropic",
            "base_url": quiet.url,
            "api_key": "sk-ant-upstream",
            "models": {"claude": "claude-sonnet-4-6"},
            "trace_propagation": False,
        },
        "openai": {
            "type": "openai",
            "base_url": gpt.url + "/v1",
            "api_key": "sk-openai-upstream",
            "models": {"gpt": "gpt-4o-mini"},
        },
        "m1": {"type": "mock", "models": {"echo": "echo"}},
        "failing": {"type": "mock", "models": {"echo": "echo"}, "error_status": 529},
    }


_VIRTUAL = {
    "echo": {
        "targets": [
            {"model": "failing/echo", "priority": 1},
            {"model": "m1/echo", "priority": 2},
        ]
    },
    "retried": {
        "targets": [{"model": "anthropic/claude"}],
        "retry": {"attempts": 2, "backoff_ms": 10},
    },
}


@dataclass
class Env:
    otlp: OTLPReceiver
    fake: FakeAnthropic
    quiet: FakeAnthropic
    gpt: FakeOpenAI
    gw: GatewayProcess
    a: anthropic.Anthropic
    o: openai.OpenAI

    def call(self, request_id: str, count: int) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
        """The server span of the call ``request_id`` and its ``count - 1`` client spans."""
        spans = self.otlp.wait_for(lambda s: _server_of(s, request_id) is not None)
        server = _server_of(spans, request_id)
        assert server is not None
        found = self.otlp.trace(server.trace_id, count)
        assert found[0] is server or found[0].span_id == server.span_id
        return found[0], found[1:]


def _server_of(spans: list[ReceivedSpan], request_id: str) -> ReceivedSpan | None:
    for s in spans:
        if s.kind == SERVER and s.attributes.get("llmrelay.request_id") == request_id:
            return s
    return None


def _traceparent(sampled: bool = True) -> tuple[str, str, str]:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-{'01' if sampled else '00'}"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("tracing")
    with (
        OTLPReceiver() as otlp,
        FakeAnthropic() as fake,
        FakeAnthropic() as quiet,
        FakeOpenAI() as gpt,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        config = base_config(
            tmp,
            _providers(fake, quiet, gpt),
            models=_VIRTUAL,
            observability={"tracing": {"endpoint": otlp.endpoint, "service_name": "llmrelay-test"}},
        )
        gw = start_gateway(tmp, config)
        try:
            with _clients(gw) as (a, o):
                yield Env(otlp, fake, quiet, gpt, gw, a, o)
        finally:
            gw.stop()


@contextlib.contextmanager
def _clients(gw: GatewayProcess) -> Iterator[tuple[anthropic.Anthropic, openai.OpenAI]]:
    with (
        anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0) as a,
        openai.OpenAI(api_key=ALICE_KEY, base_url=gw.url + "/v1", max_retries=0) as o,
    ):
        yield a, o


def _no_content(span: ReceivedSpan) -> None:
    assert not [k for k in span.attributes if k in CONTENT_KEYS]


def test_messages_json_continues_the_clients_trace(env: Env) -> None:
    trace_id, parent, traceparent = _traceparent()
    raw = env.a.messages.with_raw_response.create(
        model="anthropic/claude",
        max_tokens=300,
        messages=HELLO,
        extra_headers={"traceparent": traceparent, "tracestate": "vendor=abc"},
    )
    message = raw.parse()
    server, (client,) = env.call(raw.headers["request-id"], 2)

    assert server.trace_id == client.trace_id == trace_id
    assert server.parent_span_id == parent and client.parent_span_id == server.span_id
    assert server.kind == SERVER and client.kind == CLIENT
    assert server.trace_state == "vendor=abc"
    assert server.resource["service.name"] == "llmrelay-test"
    assert server.name == "POST /v1/messages" and client.name == "chat claude-sonnet-4-6"
    assert server.status_code == UNSET and client.status_code == UNSET
    a = server.attributes
    assert a["http.request.method"] == "POST" and a["url.path"] == "/v1/messages"
    assert a["http.response.status_code"] == 200
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "anthropic/claude"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.request.stream"] is False
    assert a["llmrelay.key"] == "alice"
    assert a["llmrelay.target"] == "anthropic/claude" and a["llmrelay.attempts"] == 1
    assert "llmrelay.virtual_model" not in a
    assert a["llmrelay.cost_usd"] > 0 and a["llmrelay.overhead_s"] >= 0
    assert a["gen_ai.usage.input_tokens"] == message.usage.input_tokens
    assert a["gen_ai.usage.output_tokens"] == message.usage.output_tokens
    c = client.attributes
    assert c["gen_ai.operation.name"] == "chat"
    assert c["gen_ai.provider.name"] == "anthropic" and c["llmrelay.provider"] == "anthropic"
    assert c["gen_ai.request.model"] == "claude-sonnet-4-6"
    assert c["gen_ai.request.max_tokens"] == 300
    assert c["gen_ai.response.model"] == message.model
    assert c["gen_ai.response.id"] == message.id
    assert c["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert c["gen_ai.usage.output_tokens"] == message.usage.output_tokens
    assert c["server.address"] == "127.0.0.1" and c["server.port"] == int(env.fake.url[-5:])
    assert c["llmrelay.attempt"] == 1 and c["llmrelay.target"] == "anthropic/claude"
    _no_content(server)
    _no_content(client)
    # The provider request names the attempt's span as its parent, once.
    sent = env.fake.requests[-1].headers
    assert sent["traceparent"] == f"00-{trace_id}-{client.span_id}-01"
    assert sent["tracestate"] == "vendor=abc"


def test_messages_stream(env: Env) -> None:
    raw = env.a.messages.with_raw_response.create(
        model="anthropic/claude",
        max_tokens=50,
        messages=HELLO,
        stream=True,
    )
    events = list(raw.parse())
    start = events[0]
    assert start.type == "message_start"
    server, (client,) = env.call(raw.headers["request-id"], 2)
    assert server.attributes["gen_ai.request.stream"] is True
    assert server.attributes["llmrelay.ttft_s"] > 0
    c = client.attributes
    assert c["gen_ai.response.id"] == start.message.id
    assert c["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert c["gen_ai.usage.output_tokens"] == server.attributes["gen_ai.usage.output_tokens"] > 0
    assert client.end_ns >= client.start_ns and server.end_ns >= client.end_ns
    # A trace the gateway starts has W3C level 2's random-trace-id flag (0x02) too.
    sent = env.fake.requests[-1].headers["traceparent"]
    assert sent == f"00-{server.trace_id}-{client.span_id}-03"


def test_chat_completions_json_and_stream(env: Env) -> None:
    client = env.o
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt",
        messages=HELLO,
        max_completion_tokens=64,
    )
    completion = raw.parse()
    server, (attempt,) = env.call(raw.headers["request-id"], 2)
    assert server.name == "POST /v1/chat/completions"
    assert server.attributes["gen_ai.provider.name"] == "openai"
    a = attempt.attributes
    assert attempt.name == "chat gpt-4o-mini"
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.response.id"] == completion.id
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert completion.usage is not None
    assert a["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert env.gpt.requests[-1].headers["traceparent"].split("-")[2] == attempt.span_id

    raw_stream = client.chat.completions.with_raw_response.create(
        model="openai/gpt",
        messages=HELLO,
        stream=True,
    )
    chunks = list(raw_stream.parse())
    server, (attempt,) = env.call(raw_stream.headers["request-id"], 2)
    assert attempt.attributes["gen_ai.response.id"] == chunks[0].id
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert server.attributes["gen_ai.usage.output_tokens"] > 0
    _no_content(server)


def test_translated_attempts_carry_the_attempts_traceparent(env: Env) -> None:
    raw = env.o.chat.completions.with_raw_response.create(
        model="anthropic/claude",
        messages=HELLO,
    )
    _, (attempt,) = env.call(raw.headers["request-id"], 2)
    assert attempt.attributes["gen_ai.provider.name"] == "anthropic"
    assert env.fake.requests[-1].headers["traceparent"].split("-")[2] == attempt.span_id

    raw2 = env.a.messages.with_raw_response.create(
        model="openai/gpt",
        max_tokens=20,
        messages=HELLO,
        stream=True,
    )
    list(raw2.parse())
    _, (attempt,) = env.call(raw2.headers["request-id"], 2)
    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert env.gpt.requests[-1].headers["traceparent"].split("-")[2] == attempt.span_id


def test_a_fallback_is_two_sibling_client_spans(env: Env) -> None:
    raw = env.a.messages.with_raw_response.create(
        model="echo",
        max_tokens=20,
        messages=HELLO,
    )
    server, (failed, served) = env.call(raw.headers["request-id"], 3)
    assert failed.parent_span_id == served.parent_span_id == server.span_id
    assert failed.attributes["llmrelay.attempt"] == 1 and served.attributes["llmrelay.attempt"] == 2
    assert failed.attributes["llmrelay.target"] == "failing/echo"
    assert failed.attributes["gen_ai.provider.name"] == "llmrelay.mock"
    assert failed.status_code == ERROR
    assert failed.attributes["error.type"] == "overloaded_error"
    assert failed.attributes["llmrelay.attempt.status"] == 529
    assert served.status_code == UNSET and served.attributes["llmrelay.target"] == "m1/echo"
    assert served.attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert server.status_code == UNSET
    a = server.attributes
    assert a["llmrelay.virtual_model"] == "echo" and a["llmrelay.attempts"] == 2
    assert a["llmrelay.target"] == "m1/echo"


def test_a_retry_is_a_sibling_span_of_the_same_target(env: Env) -> None:
    env.fake.enqueue(json_reply(error_body(529, "Overloaded"), 529))
    trace_id, _, traceparent = _traceparent()
    env.a.messages.create(
        model="retried",
        max_tokens=20,
        messages=HELLO,
        extra_headers={"traceparent": traceparent},
    )
    server, first, second = env.otlp.trace(trace_id, 3)
    assert first.parent_span_id == second.parent_span_id == server.span_id
    assert first.attributes["llmrelay.target"] == second.attributes["llmrelay.target"]
    assert first.status_code == ERROR and second.status_code == UNSET
    assert [first.attributes["llmrelay.attempt"], second.attributes["llmrelay.attempt"]] == [1, 2]
    # Each attempt's request named its own span.
    sent = [r.headers["traceparent"].split("-")[2] for r in env.fake.requests[-2:]]
    assert sent == [first.span_id, second.span_id]


def test_a_client_that_leaves_mid_stream_ends_both_spans(env: Env) -> None:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_left", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-6", "stop_reason": None,
            "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ("ping", {"type": "ping"}),
    ]  # fmt: skip
    env.fake.enqueue(sse_reply(events, hang_after=True))
    u = urlsplit(env.gw.url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=10)
    body = {"model": "anthropic/claude", "max_tokens": 5, "stream": True, "messages": HELLO}
    headers = {"x-api-key": ALICE_KEY, "content-type": "application/json"}
    conn.request("POST", "/v1/messages", json.dumps(body), headers)
    resp = conn.getresponse()
    rid = resp.getheader("request-id") or ""
    resp.read1(1)
    conn.close()
    server, (attempt,) = env.call(rid, 2)
    assert server.attributes["http.response.status_code"] == 499
    assert server.attributes["error.type"] == "client_disconnected"
    assert server.status_code == UNSET and attempt.status_code == UNSET
    assert attempt.attributes["gen_ai.response.id"] == "msg_left"


def test_a_failed_call_is_an_error(env: Env) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        env.a.messages.create(
            model="failing/echo",
            max_tokens=20,
            messages=HELLO,
        )
    server, (attempt,) = env.call(caught.value.response.headers["request-id"], 2)
    assert server.status_code == ERROR and attempt.status_code == ERROR
    assert server.attributes["http.response.status_code"] == 529
    assert server.attributes["error.type"] == "overloaded_error"


def test_a_refused_call_has_no_client_span(env: Env) -> None:
    with (
        anthropic.Anthropic(api_key="sk-wrong-0123456789", base_url=env.gw.url) as bad,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        bad.messages.create(model="anthropic/claude", max_tokens=5, messages=HELLO)
    server, clients = env.call(caught.value.response.headers["request-id"], 1)
    assert clients == []
    assert server.attributes["http.response.status_code"] == 401
    assert server.status_code == UNSET  # a 4xx is the client's error, not the server's
    assert "llmrelay.key" not in server.attributes


def test_no_propagation_to_a_provider_that_turns_it_off(env: Env) -> None:
    _, _, traceparent = _traceparent()
    raw = env.a.messages.with_raw_response.create(
        model="quiet/claude",
        max_tokens=5,
        messages=HELLO,
        extra_headers={"traceparent": traceparent},
    )
    env.call(raw.headers["request-id"], 2)
    # The client's own header goes through as it came; the gateway adds none.
    assert env.quiet.requests[-1].headers["traceparent"] == traceparent
    env.a.messages.create(model="quiet/claude", max_tokens=5, messages=HELLO)
    assert "traceparent" not in env.quiet.requests[-1].headers


def test_an_unsampled_client_trace_is_not_recorded(env: Env) -> None:
    trace_id, _, traceparent = _traceparent(sampled=False)
    env.a.messages.create(
        model="anthropic/claude",
        max_tokens=5,
        messages=HELLO,
        extra_headers={"traceparent": traceparent},
    )
    sent = env.fake.requests[-1].headers["traceparent"]
    assert sent.startswith(f"00-{trace_id}-") and sent.endswith("-00")
    # A sampled call after it is exported; the unsampled one never is.
    raw = env.a.messages.with_raw_response.create(
        model="anthropic/claude",
        max_tokens=5,
        messages=HELLO,
    )
    env.call(raw.headers["request-id"], 2)
    assert not [s for s in env.otlp.spans if s.trace_id == trace_id]


# -- content ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def content_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("tracing-content")
    with (
        OTLPReceiver() as otlp,
        FakeAnthropic() as fake,
        FakeAnthropic() as quiet,
        FakeOpenAI() as gpt,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        tracing = {"endpoint": otlp.endpoint, "capture_content": True, "max_content_kb": 1}
        # The request log keeps bodies too: the trace reads the answer on its way to it.
        observability = {"tracing": tracing, "request_log": {"bodies": "all"}}
        config = base_config(
            tmp,
            _providers(fake, quiet, gpt),
            observability=observability,
            admin={"key": ADMIN_KEY},
        )
        gw = start_gateway(tmp, config)
        try:
            with _clients(gw) as (a, o):
                yield Env(otlp, fake, quiet, gpt, gw, a, o)
        finally:
            gw.stop()


ADMIN_KEY = "sk-admin-0123456789abcdef0123"


def _request_log(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    """The call's request log record, once the usage writer stored it."""
    deadline = time.monotonic() + 10
    request = urllib.request.Request(
        f"{gw.url}/admin/requests/{request_id}",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                record: dict[str, Any] = json.loads(resp.read())
                return record
        except urllib.error.HTTPError as err:
            err.close()
            if err.code != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _json_attr(span: ReceivedSpan, key: str) -> Any:
    raw = span.attributes[key]
    assert isinstance(raw, str) and len(raw.encode()) <= 1024
    return json.loads(raw)


def test_content_is_captured_when_asked_and_bounded(content_env: Env) -> None:
    long_text = "word " * 2000
    raw = content_env.a.messages.with_raw_response.create(
        model="m1/echo",
        max_tokens=50,
        system="Be brief.",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": long_text},
        ],
    )
    message = raw.parse()
    server, _ = content_env.call(raw.headers["request-id"], 2)
    messages = _json_attr(server, "gen_ai.input.messages")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["parts"] == [{"type": "text", "content": "Hi"}]
    assert messages[2]["parts"][0]["content"].endswith("…[truncated]")
    assert _json_attr(server, "gen_ai.system_instructions") == [
        {"type": "text", "content": "Be brief."}
    ]
    (out,) = _json_attr(server, "gen_ai.output.messages")
    assert out["role"] == "assistant" and out["finish_reason"] == message.stop_reason
    assert out["parts"][0]["type"] == "text"
    assert message.content[0].type == "text"
    assert out["parts"][0]["content"] == message.content[0].text[: len(out["parts"][0]["content"])]


@pytest.mark.parametrize("sdk", ["anthropic", "openai"])
def test_content_of_streams(content_env: Env, sdk: str) -> None:
    if sdk == "anthropic":  # a passthrough stream (the mock speaks Anthropic's wire)
        raw: Any = content_env.a.messages.with_raw_response.create(
            model="m1/echo",
            max_tokens=50,
            messages=HELLO,
            stream=True,
        )
        text = "".join(
            e.delta.text
            for e in raw.parse()
            if e.type == "content_block_delta" and e.delta.type == "text_delta"
        )
    else:  # a translated stream
        raw = content_env.o.chat.completions.with_raw_response.create(
            model="m1/echo",
            messages=HELLO,
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    rid = raw.headers["request-id"]
    server, _ = content_env.call(rid, 2)
    (out,) = _json_attr(server, "gen_ai.output.messages")
    assert out["parts"] == [{"type": "text", "content": text}]
    assert _json_attr(server, "gen_ai.input.messages")[0]["parts"][0]["content"] == "Hello there"
    # The request log got the same call's bodies through the trace's capture.
    bodies = _request_log(content_env.gw, rid)["bodies"]
    assert "Hello there" in bodies["request"] and text in bodies["response"]


# -- sampling, configuration by environment ---------------------------------------------------

_MOCK = {"m1": {"type": "mock", "models": {"echo": "echo"}}}


def _mock_gateway(tmp: Path, tracing: dict[str, Any] | None) -> GatewayProcess:
    """A gateway with one mock account and ``observability.tracing`` (None: not set)."""
    extra = {} if tracing is None else {"observability": {"tracing": tracing}}
    return start_gateway(tmp, base_config(tmp, _MOCK, **extra))


def test_sample_ratio_zero_keeps_only_sampled_client_traces(tmp_path: Path) -> None:
    with (
        OTLPReceiver() as otlp,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        gw = _mock_gateway(tmp_path, {"endpoint": otlp.endpoint, "sample_ratio": 0.0})
        try:
            with _clients(gw) as (client, _):
                client.messages.create(model="m1/echo", max_tokens=5, messages=HELLO)
                trace_id, _, traceparent = _traceparent()
                client.messages.create(
                    model="m1/echo",
                    max_tokens=5,
                    messages=HELLO,
                    extra_headers={"traceparent": traceparent},
                )
            spans = otlp.trace(trace_id, 2)
            assert [s.kind for s in spans] == [SERVER, CLIENT]
            assert {s.trace_id for s in otlp.spans} == {trace_id}
        finally:
            gw.stop()


def test_standard_otel_variables_turn_tracing_on(tmp_path: Path) -> None:
    with OTLPReceiver() as otlp, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        mp.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.base)
        mp.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=abc123")
        mp.setenv("OTEL_SERVICE_NAME", "relay-from-env")
        gw = _mock_gateway(tmp_path, None)
        try:
            with _clients(gw) as (_, client):
                client.chat.completions.create(model="m1/echo", messages=HELLO)
            spans = otlp.wait_for(lambda s: len(s) >= 2)
            assert spans[0].resource["service.name"] == "relay-from-env"
            assert otlp.headers["x-collector-key"] == "abc123"
        finally:
            gw.stop()


# -- a collector that is down or stuck --------------------------------------------------------


def _calls(gw: GatewayProcess, n: int) -> None:
    """``n`` calls, streams and JSON, both SDKs; each must succeed."""
    with _clients(gw) as (a, o):
        for i in range(n):
            if i % 2:
                with a.messages.stream(model="m1/echo", max_tokens=20, messages=HELLO) as s:
                    assert s.get_final_message().stop_reason == "end_turn"
            else:
                reply = o.chat.completions.create(model="m1/echo", messages=HELLO)
                assert reply.choices[0].finish_reason == "stop"


def _scrape(gw: GatewayProcess, name: str) -> float:
    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_a_dead_collector_does_not_fail_calls(tmp_path: Path) -> None:
    tracing = {"endpoint": f"http://127.0.0.1:{free_port()}/v1/traces", "export_timeout_s": 1}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        gw = _mock_gateway(tmp_path, tracing)
    try:
        _calls(gw, 6)
    finally:
        gw.stop()
    assert gw.proc.returncode is not None


def test_a_hanging_collector_does_not_hold_calls_and_drops_are_counted(tmp_path: Path) -> None:
    with OTLPReceiver(hang=True) as otlp, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        tracing = {"endpoint": otlp.endpoint, "max_queue_size": 1, "export_timeout_s": 2}
        gw = _mock_gateway(tmp_path, tracing)
        try:
            _calls(gw, 8)
            assert otlp.requests >= 1  # the export thread is stuck in the collector
            assert _scrape(gw, "llmrelay_spans_dropped_total") > 0
        finally:
            gw.stop()


# -- off by default ---------------------------------------------------------------------------


def test_tracing_off_loads_and_registers_nothing(tmp_path: Path) -> None:
    """No observer and not even the OpenTelemetry modules when tracing is off."""
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(base_config(tmp_path, _MOCK)))
    code = (
        "import sys\n"
        "from llmrelay.config import load_settings\n"
        "from llmrelay.app import Gateway\n"
        f"g = Gateway(load_settings({str(config)!r}))\n"
        "assert g.tracing is None, g.tracing\n"
        "assert not [o for o in g.observers if type(o).__name__ == 'Tracing']\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize(
    ("tracing", "env", "on"),
    [
        ({}, {}, False),
        ({"enabled": True}, {}, True),
        ({"endpoint": "http://c:4318/v1/traces"}, {}, True),
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"enabled": False}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        # enabled written out wins over an endpoint in the same file (one template, switched)
        ({"enabled": False, "endpoint": "http://c:4318/v1/traces"}, {}, False),
        ({"enabled": True}, {"OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_when_tracing_is_on(tracing: dict[str, Any], env: dict[str, str], on: bool) -> None:
    assert TracingConfig.model_validate(tracing).active(env) is on


def test_the_encoder_writes_what_the_sdk_does() -> None:
    """Every attribute type, statuses, a remote parent with tracestate, events and links:
    the bytes decode to the message the SDK's own encoder builds."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TraceState,
        set_span_in_context,
    )

    from llmrelay.obs.otlp import encode_spans

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "t", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scope", "1.2")
    other = provider.get_tracer("other")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "a=b")]),
    )
    attributes: dict[str, Any] = {
        "s": "short",
        "long": "x" * 300,
        "unicode": "héllo ✓ 🌍",
        "empty": "",
        "t": True,
        "f": False,
        "zero": 0,
        "big": 2**40,
        "neg": -5,
        "float": 1.25,
        "strs": ["a", "b"],
        "ints": [1, -2, 300],
        "floats": [0.5],
        "bools": [True, False],
    }
    server = tracer.start_span(
        "server", context=set_span_in_context(NonRecordingSpan(remote)), kind=SpanKind.SERVER
    )
    server.set_attributes(attributes)
    server.add_event("evt", {"k": "v"})
    child = tracer.start_span(
        "child",
        context=set_span_in_context(server),
        kind=SpanKind.CLIENT,
        links=[Link(remote, {"l": 1})],
    )
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end()
    server.set_status(Status(StatusCode.OK))
    server.end()
    lone = other.start_span("lone", attributes={"x": 1})
    lone.end()
    spans = memory.get_finished_spans()
    assert len(spans) == 3
    assert ExportTraceServiceRequest.FromString(encode_spans(spans)) == sdk(spans)


def test_content_is_cut_keeping_its_structure() -> None:
    from llmrelay.obs.trace_content import bounded_json

    items = [{"role": "user", "parts": [{"type": "text", "content": "x" * 5000}]}] * 3
    out = bounded_json(items, 1024)
    assert len(out.encode()) <= 1024
    parsed = json.loads(out)
    assert parsed and all(m["parts"][0]["content"].endswith("…[truncated]") for m in parsed)
    small = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert json.loads(bounded_json(small, 1024)) == small
    assert bounded_json(small, 8) == "[]"


@pytest.mark.parametrize(
    ("tracing", "env"),
    [
        ({"protocol": "grpc"}, {}),
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}),
        ({}, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}),
    ],
)
def test_grpc_without_its_exporter_is_a_config_error(
    tracing: dict[str, Any], env: dict[str, str]
) -> None:
    import importlib.util

    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None:
        pytest.skip("the gRPC exporter is installed")
    from llmrelay.config import ConfigError, Settings
    from llmrelay.obs.tracing import Tracing

    settings = Settings.model_validate(
        {
            "auth": {"keys": [{"name": "alice", "key": ALICE_KEY}]},
            "providers": {"m1": {"type": "mock", "models": {"echo": "echo"}}},
            "observability": {"tracing": {"endpoint": "c:4317", **tracing}},
        }
    )
    with pytest.raises(ConfigError, match=r"llmrelay\[tracing-grpc\]"):
        Tracing(settings, env)


def test_a_calls_trace_id_is_the_clients(tmp_path: Path) -> None:
    """For log lines: ``call.trace.trace_id`` is the trace the call joined (or started)."""
    import asyncio

    from multidict import CIMultiDict, CIMultiDictProxy

    from llmrelay.config import Settings
    from llmrelay.core.usage import Usage
    from llmrelay.obs.trace_spans import CallTrace
    from llmrelay.obs.tracing import Tracing
    from llmrelay.pipeline.call import Call
    from llmrelay.stores.usage import UsageRecord

    trace_id, _, traceparent = _traceparent()
    settings = Settings.model_validate(
        {
            "auth": {"keys": [{"name": "alice", "key": ALICE_KEY}]},
            "providers": _MOCK,
            "observability": {
                "tracing": {
                    "endpoint": f"http://127.0.0.1:{free_port()}/v1/traces",
                    "export_timeout_s": 0.2,
                }
            },
        }
    )
    tracing = Tracing(settings, {})

    class Request:
        method, path = "POST", "/v1/messages"
        headers = CIMultiDictProxy(CIMultiDict({"traceparent": traceparent}))

    record = UsageRecord(0.0, "req_1", "", "", "", "", "messages", False, 499)
    call = Call(None, Request(), "anthropic", record, Usage(), time.perf_counter())  # type: ignore[arg-type]
    tracing.call_started(call)
    assert isinstance(call.trace, CallTrace) and call.trace.trace_id_hex == trace_id
    tracing.call_ended(call)
    asyncio.run(tracing.aclose())


@pytest.mark.parametrize(
    ("tracing", "env", "where"),
    [
        (
            {"endpoint": "http://c:4318/v1/traces"},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"},
            "http://c:4318/v1/traces",
        ),
        (
            {},
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/v1/traces",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x",
            },
            "http://t/v1/traces",
        ),
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318/"}, "http://x:4318/v1/traces"),
        ({"protocol": "grpc"}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "x:4317"}, "x:4317"),
        ({}, {}, "http://localhost:4318/v1/traces"),
        ({"protocol": "grpc"}, {}, "http://localhost:4317"),
    ],
)
def test_the_destination_is_resolved_as_the_exporters_do(
    tracing: dict[str, Any], env: dict[str, str], where: str
) -> None:
    """What the startup line reports (``llmrelay serve``): the OTLP exporters' own order."""
    assert TracingConfig.model_validate(tracing).destination(env) == where
