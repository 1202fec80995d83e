"""The offline mock provider speaks the Anthropic wire, checked through the SDK."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from llmrelay.providers.mock.codec import message_events, reply_message
from tests.conftest import ALICE_KEY, GatewayProcess, base_config

MODEL = "local/echo"
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city", "days", "unit"],
        },
    }
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[anthropic.Anthropic]:
    from tests.conftest import start_gateway

    tmp = tmp_path_factory.mktemp("mock")
    gw: GatewayProcess = start_gateway(
        tmp, base_config(tmp, {"local": {"type": "mock", "models": {"echo": "echo"}}})
    )
    try:
        with anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0) as c:
            yield c
    finally:
        gw.stop()


def test_text(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hello there"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "mock echo: hello there"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


def test_stream_matches_create(client: anthropic.Anthropic) -> None:
    kw = dict(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "same"}])
    created = client.messages.create(**kw)  # type: ignore[call-overload]
    with client.messages.stream(**kw) as s:  # type: ignore[arg-type]
        streamed = s.get_final_message()
    assert streamed.model_dump() == created.model_dump()


def test_tool_use_and_tool_result_round_trip(client: anthropic.Anthropic) -> None:
    first = client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "use get_weather for Paris"}],
    )
    assert first.stop_reason == "tool_use"
    tool = first.content[-1]
    assert tool.type == "tool_use"
    assert tool.input == {"city": "mock", "days": 1, "unit": "c"}
    with client.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "use get_weather for Paris"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},  # type: ignore[misc]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "18C"}],
            },
        ],
    ) as s:
        second = s.get_final_message()
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and "18C" in second.content[0].text


def test_tool_choice_any_streams_input_json(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "any"},  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather?"}],
    ) as s:
        deltas = [e.delta.type for e in s if e.type == "content_block_delta"]
        final = s.get_final_message()
    assert "input_json_delta" in deltas
    assert final.content[-1].type == "tool_use"


def test_thinking_with_signature(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think"}],
    ) as s:
        final = s.get_final_message()
    assert final.content[0].type == "thinking"
    assert final.content[0].signature


def test_stop_sequence_and_max_tokens(client: anthropic.Anthropic) -> None:
    cut = client.messages.create(
        model=MODEL,
        max_tokens=50,
        stop_sequences=["STOP"],
        messages=[{"role": "user", "content": "one STOP two"}],
    )
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == "STOP"
    assert cut.content[0].type == "text" and cut.content[0].text == "mock echo: one "
    short = client.messages.create(
        model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "a b c d e"}]
    )
    assert short.stop_reason == "max_tokens"


def test_count_tokens(client: anthropic.Anthropic) -> None:
    small = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "a"}])
    big = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "a" * 4000}]
    )
    assert 0 < small.input_tokens < big.input_tokens
    assert big.input_tokens >= 1000


def test_invalid_request_is_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=MODEL, max_tokens=5, messages=[])
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("error_status", [None, 529])
def test_mock_errors_carry_a_request_id_as_anthropics_do(error_status: int | None) -> None:
    # The gateway relays a provider's error body as it is: the mock's had no request_id,
    # so its callers got Anthropic's envelope without one (found by the ingress fuzz).
    import asyncio

    from llmrelay.config import MockProviderConfig
    from llmrelay.providers.base import ProviderRequest
    from llmrelay.providers.mock.client import MockProvider

    config = MockProviderConfig(type="mock", models={"echo": "echo"}, error_status=error_status)
    provider = MockProvider("local", config)
    request = ProviderRequest("messages", {"messages": []}, {}, "", False)
    resp = asyncio.run(provider.send(request))
    body = json.loads(asyncio.run(resp.read()))
    assert resp.status == (error_status or 400)
    assert body["type"] == "error"
    assert body["request_id"].startswith("req_")
    assert resp.upstream_request_id == body["request_id"] == resp.headers["request-id"]


def test_events_fold_back_to_the_message() -> None:
    body = {
        "model": "echo",
        "max_tokens": 100,
        "tools": TOOLS,
        "thinking": {"type": "enabled", "budget_tokens": 1000},
        "messages": [{"role": "user", "content": "call get_weather"}],
    }
    message = reply_message(body)
    events = message_events(message)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert reply_message(body) == message  # deterministic
    starts = [e["index"] for e in events if e["type"] == "content_block_start"]
    assert starts == list(range(len(message["content"])))


@pytest.mark.parametrize("port_flag", [False, True], ids=["config-port", "make-run-PORT"])
def test_snippet_from_make_run_works_as_printed(tmp_path: Path, port_flag: bool) -> None:
    import subprocess
    import sys

    from tests.conftest import free_port

    cfg = tmp_path / "llmrelay.local.yaml"
    subprocess.run(
        [sys.executable, "-m", "llmrelay", "init", str(cfg)], check=True, capture_output=True
    )
    port = free_port()
    # `make run PORT=N` passes --port to snippet and serve; else the config says the port.
    flag = ["--port", str(port)] if port_flag else []
    if not port_flag:
        cfg.write_text(cfg.read_text().replace("port: 4000", f"port: {port}"))
    snippet = subprocess.run(
        [sys.executable, "-m", "llmrelay", "snippet", "--config", str(cfg), *flag],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    code = snippet.split("Paste this into Python (pip install anthropic):", 1)[1]
    code = code.split("Or curl:", 1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmrelay", "serve", "--config", str(cfg), *flag],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import time
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    finally:
        proc.terminate()
        proc.wait(10)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "mock echo: Hello, llmrelay"


def test_echo_is_the_typed_prompt_not_system_turns_or_reminders() -> None:
    # Claude Code appends <system-reminder> blocks and, for unknown model names, a
    # role:system turn that mentions its tools; neither is what the user typed.
    body = {
        "model": "echo",
        "max_tokens": 100,
        "tools": [
            {"name": "Agent", "input_schema": {"type": "object"}},
            {"name": "Bash", "input_schema": {"type": "object"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<system-reminder>Use the Agent tool.</system-reminder>",
                    },
                    {"type": "text", "text": "say hi"},
                ],
            },
            {"role": "system", "content": "# Environment: the Agent tool and Bash are here"},
        ],
    }
    message = reply_message(body)
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": "mock echo: say hi"}]
    body["messages"][0]["content"][1]["text"] = "please use Bash now"
    assert reply_message(body)["content"][-1]["name"] == "Bash"
    body["messages"][0]["content"][1]["text"] = "Bashful"
    assert reply_message(body)["stop_reason"] == "end_turn"


def test_the_starter_config_shows_a_fallback_and_a_cooldown(tmp_path: Path) -> None:
    # The README's example: `make run`'s config routes "echo" to an overloaded mock first.
    import json
    import subprocess
    import sys

    import yaml

    from tests.conftest import start_gateway
    from tests.gateway_env import raw_request

    cfg = tmp_path / "llmrelay.local.yaml"
    subprocess.run(
        [sys.executable, "-m", "llmrelay", "init", str(cfg)], check=True, capture_output=True
    )
    config = yaml.safe_load(cfg.read_text())
    key = config["auth"]["keys"][0]["key"]
    gw = start_gateway(tmp_path, config)
    try:

        def call(stream: bool) -> tuple[dict[str, str], bytes]:
            hello = [{"role": "user", "content": "Hello"}]
            body = {"model": "echo", "max_tokens": 256, "stream": stream, "messages": hello}
            status, headers, raw = raw_request(
                gw.url + "/v1/messages",
                json.dumps(body).encode(),
                {"x-api-key": key, "content-type": "application/json"},
            )
            assert status == 200, raw
            return headers, raw

        headers, raw = call(stream=False)
        assert json.loads(raw)["content"][0]["text"] == "mock echo: Hello"
        assert (headers["x-llmrelay-model"], headers["x-llmrelay-attempts"]) == ("mock/echo", "2")
        headers, raw = call(stream=True)  # 200 + overloaded_error first: the gate falls back
        assert raw.startswith(b"event: message_start") and b"overloaded" not in raw
        assert headers["x-llmrelay-attempts"] == "2"
        assert call(stream=False)[0]["x-llmrelay-attempts"] == "2"  # third failure: cooled
        assert call(stream=False)[0]["x-llmrelay-attempts"] == "1"  # skipped for 30 s
    finally:
        gw.stop()


# -- lone surrogates --------------------------------------------------------------------
# "\ud800" is legal JSON and reaches the mock as a Python str that UTF-8 cannot hold.


def test_lone_surrogate_is_echoed_as_replacement_character() -> None:
    body = {
        "model": "m\udfff",
        "max_tokens": 50,
        "stop_sequences": ["zz\ud800"],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a\ud800b"}]}],
        "tools": [{"name": "get\udc00", "input_schema": {"required": ["x\ud801"]}}],
    }
    message = reply_message(body)
    assert message["content"] == [{"type": "text", "text": "mock echo: a\ufffdb"}]
    assert message["model"] == "m\ufffd"
    events = message_events(message)
    assert events[-1] == {"type": "message_stop"}
    tool_body = {**body, "tool_choice": {"type": "any"}}
    tool = reply_message(tool_body)["content"][1]
    assert tool["name"] == "get\ufffd" and tool["input"] == {"x\ufffd": "mock"}


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"name": {"a": 1}}, "junk"]},  # auto: names are matched against the text
        {"tools": [{"name": "t", "input_schema": ["x"]}], "tool_choice": {"type": "any"}},
        {"tools": [{"name": "t", "input_schema": {"required": [{}], "properties": 1}}]},
        {"stop_sequences": 7},
    ],
)
def test_malformed_fields_do_not_crash_the_mock(extra: dict[str, Any]) -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi t"}], **extra}
    assert reply_message(body)["content"]


def _post(client: anthropic.Anthropic, path: str, body: bytes) -> bytes:
    # The SDK cannot send a lone surrogate (it writes UTF-8); other clients send the escape.
    request = urllib.request.Request(
        f"{str(client.base_url).rstrip('/')}{path}",
        data=body,
        headers={"x-api-key": ALICE_KEY, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        data: bytes = response.read()
        return data


def test_lone_surrogate_through_the_gateway(client: anthropic.Anthropic) -> None:
    messages = b'"messages": [{"role": "user", "content": "x\\ud800y"}]'
    body = b'{"model": "local/echo", "max_tokens": 50, ' + messages
    created = json.loads(_post(client, "/v1/messages", body + b"}"))
    assert created["content"] == [{"type": "text", "text": "mock echo: x\ufffdy"}]
    streamed = _post(client, "/v1/messages", body + b', "stream": true}').decode()
    assert "event: message_stop" in streamed and "x\ufffdy" in streamed.replace(" ", "")
    counted = json.loads(_post(client, "/v1/messages/count_tokens", body + b"}"))
    assert counted["input_tokens"] > 0
