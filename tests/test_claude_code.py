"""Claude Code (the real CLI) as a client of llmrelay: opt-in, end to end, offline.

Runs ``claude -p`` (``@anthropic-ai/claude-code`` pinned to ``CLAUDE_CODE_VERSION``) against a
``llmrelay serve`` process whose ``anthropic`` provider points at a scripted
:class:`FakeAnthropic`, and checks what reaches the upstream. See
``/work/shared/reference/claude-code-client.md`` for the request profile this relies on.

The second half does the same against an ``openai`` provider (a scripted :class:`FakeOpenAI`),
so the Anthropic surface translates every request to Chat Completions and every stream back.

The last part runs a text and a Bash tool turn against ``bedrock`` and ``vertex`` providers
(scripted :class:`FakeBedrock` / :class:`FakeVertex`): SigV4 or an OAuth token, the clouds'
body shapes, and ``anthropic-beta`` filtered to each cloud's allow list.

Opt in with ``LLMRELAY_TEST_CLAUDE_CODE=1``. The CLI is installed on first use with
``npm install --no-save`` into ``$LLMRELAY_CLAUDE_CODE_CACHE`` (default
``~/.cache/llmrelay-claude-code``), outside the repository, and reused afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmrelay.providers.betas import BEDROCK_BETAS, VERTEX_BETAS

from .conftest import ALICE_KEY, BOB_KEY, GatewayProcess, base_config, start_gateway
from .fakes.anthropic_upstream import (
    FakeAnthropic,
    RecordedRequest,
    Reply,
    count_tokens_for,
    json_reply,
    sse_reply,
)
from .fakes.bedrock_upstream import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    BedrockRequest,
    FakeBedrock,
    bedrock_message_reply,
    bedrock_stream_reply,
)
from .fakes.openai_upstream import CREATED, FakeOpenAI, chunks_reply, error_reply
from .fakes.vertex_upstream import FakeGoogleToken, FakeVertex, VertexRequest

pytestmark = pytest.mark.skipif(
    os.environ.get("LLMRELAY_TEST_CLAUDE_CODE") != "1",
    reason="runs the real Claude Code CLI (npm install, ~400 MB); set LLMRELAY_TEST_CLAUDE_CODE=1",
)

CLAUDE_CODE_VERSION = "2.1.331"
CLAUDE_RUN_TIMEOUT_S = 120
MAX_TURNS = 4  # bounds the main loop only; background subagents are bounded by the timeout
NPM_INSTALL_TIMEOUT_S = 600

UPSTREAM_KEY = "sk-ant-upstream-0123456789abcdef"
UPSTREAM_MODEL = "claude-sonnet-4-6"
MODEL = "anthropic/claude-3-5"

TEXT_REPLY = "Hi from the fake upstream."
TOOL_MARKER = "llmrelay-tool-turn"
TOOL_COMMAND = "echo hello"
FINAL_REPLY = "The command printed hello."


# -- the scripted upstream ------------------------------------------------------------------
class ScriptedAnthropic(FakeAnthropic):
    """A :class:`FakeAnthropic` whose default ``/v1/messages`` reply is computed from the request.

    * the last user message holds a ``tool_result`` -> ``FINAL_REPLY``;
    * tools are offered and the last user message's text contains ``TOOL_MARKER`` -> a Bash
      ``tool_use`` running ``TOOL_COMMAND``;
    * anything else (including any side request Claude Code makes) -> ``TEXT_REPLY``.

    Deciding from the body, not from the order of requests, keeps the script valid whatever
    extra requests Claude Code sends.
    """

    def _default_message(self, raw: bytes) -> Reply:
        req = json.loads(raw)
        msg = _scripted_message(self, req, raw)
        return sse_reply(_stream_events(msg)) if req.get("stream") else json_reply(msg)


def _scripted_message(fake: FakeAnthropic, req: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """The Anthropic Message :class:`ScriptedAnthropic` answers ``req`` with (its docstring)."""
    last = _last_user_blocks(req)
    content: list[dict[str, Any]]
    if any(b.get("type") == "tool_result" for b in last):
        content, stop = [{"type": "text", "text": FINAL_REPLY}], "end_turn"
    elif req.get("tools") and any(TOOL_MARKER in str(b.get("text", "")) for b in last):
        tool_input = {"command": TOOL_COMMAND, "description": "Print hello"}
        block = {"type": "tool_use", "id": fake._next_id("toolu"), "name": "Bash"}
        content, stop = [{**block, "input": tool_input}], "tool_use"
    else:
        content, stop = [{"type": "text", "text": TEXT_REPLY}], "end_turn"
    usage = {"input_tokens": count_tokens_for(raw), "output_tokens": 10}
    return {
        "id": fake._next_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": req.get("model", UPSTREAM_MODEL),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def _last_user_blocks(req: dict[str, Any]) -> list[dict[str, Any]]:
    for msg in reversed(req.get("messages", [])):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return [{"type": "text", "text": content}]
            return [b for b in content if isinstance(b, dict)]
    return []


def _stream_events(msg: dict[str, Any]) -> list[tuple[str, Any]]:
    """``msg`` as the Anthropic SSE event sequence (text deltas, tool input as JSON deltas)."""
    start = {
        **msg,
        "content": [],
        "stop_reason": None,
        "usage": {**msg["usage"], "output_tokens": 1},
    }
    events: list[tuple[str, Any]] = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(msg["content"]):
        head: dict[str, Any]
        if block["type"] == "text":
            head = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block["text"]}]
        else:
            head = {**block, "input": {}}
            raw_input = json.dumps(block["input"])
            cut = len(raw_input) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in (raw_input[:cut], raw_input[cut:])
            ]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": head},
            )
        )
        for delta in deltas:
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": msg["usage"]["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


# -- installing and running Claude Code -----------------------------------------------------
def _claude_version(binary: Path) -> str:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return ""
    return out.stdout.strip()


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    """The ``claude`` binary of the pinned version, installed into the cache dir if missing."""
    default_cache = Path.home() / ".cache" / "llmrelay-claude-code"
    cache = Path(os.environ.get("LLMRELAY_CLAUDE_CODE_CACHE", default_cache))
    binary = cache / "node_modules" / ".bin" / "claude"
    if not _claude_version(binary).startswith(CLAUDE_CODE_VERSION):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not on PATH, so Claude Code cannot be installed")
        cache.mkdir(parents=True, exist_ok=True)
        spec = f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"
        proc = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", spec],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=NPM_INSTALL_TIMEOUT_S,
            check=False,
        )
        version = _claude_version(binary)
        assert proc.returncode == 0 and version.startswith(CLAUDE_CODE_VERSION), (
            f"npm install {spec} in {cache} failed (exit {proc.returncode}, "
            f"claude --version {version!r}):\n{proc.stdout}\n{proc.stderr}"
        )
    return binary


@dataclass
class ClaudeRun:
    returncode: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The ``--output-format json`` result object (the last JSON line of stdout)."""
        lines = [ln for ln in self.stdout.splitlines() if ln.strip()]
        assert lines, f"claude printed nothing; stderr:\n{self.stderr}"
        out: dict[str, Any] = json.loads(lines[-1])
        return out


def run_claude(
    claude: Path,
    tmp: Path,
    base_url: str,
    auth: dict[str, str],
    prompt: str,
    *args: str,
    model: str = MODEL,
) -> ClaudeRun:
    """One ``claude -p`` turn in a fresh work dir under ``tmp`` (not a git repo), offline.

    ``auth`` is ``{"ANTHROPIC_AUTH_TOKEN": key}`` or ``{"ANTHROPIC_API_KEY": key}``. The CLI runs
    in its own process group, killed whole on timeout so no tool subprocess outlives the test.
    """
    home = tmp / "home"
    work = tmp / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
        "IS_SANDBOX": "1",
        # Anything that would leave the machine goes to a closed port; the gateway is local.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        **auth,
    }
    cmd = [str(claude), "-p", prompt, "--output-format", "json", "--model", model]
    cmd += ["--max-turns", str(MAX_TURNS), *args]
    proc = subprocess.Popen(
        cmd,
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=CLAUDE_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"claude timed out after {CLAUDE_RUN_TIMEOUT_S} s:\n{stdout}\n{stderr}")
    return ClaudeRun(proc.returncode, stdout, stderr)


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake() -> Iterator[ScriptedAnthropic]:
    f = ScriptedAnthropic(expected_api_key=UPSTREAM_KEY)
    f.start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def gateway(
    fake: ScriptedAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gateway")
    providers = {
        "anthropic": {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": UPSTREAM_KEY,
            "models": {"claude-3-5": UPSTREAM_MODEL},
        },
        "local": {"type": "mock", "models": {"echo": "echo"}},
    }
    gw = start_gateway(tmp, base_config(tmp, providers))
    yield gw
    gw.stop()


def _diagnose(run: ClaudeRun, gw: GatewayProcess, requests: list[RecordedRequest]) -> str:
    lines = [f"{r.method} {r.path}?{r.query} {sorted(r.headers)}" for r in requests]
    return (
        f"exit {run.returncode}\nstdout: {run.stdout}\nstderr: {run.stderr}\n"
        f"upstream requests:\n" + "\n".join(lines) + f"\ngateway log:\n{gw.log()}"
    )


def _messages_requests(fake: FakeAnthropic, start: int) -> list[RecordedRequest]:
    return [r for r in fake.requests[start:] if r.path == "/v1/messages"]


def _assert_ok(run: ClaudeRun, diag: str) -> dict[str, Any]:
    assert run.returncode == 0, diag
    result = run.result()
    assert result["is_error"] is False, diag
    return result


def _assert_passthrough(req: RecordedRequest, gateway_key: str) -> None:
    """What the gateway must forward from a Claude Code request, and what it must swap."""
    assert req.method == "POST"
    assert req.path == "/v1/messages"
    assert req.query == "beta=true"
    assert req.headers.get("x-api-key") == UPSTREAM_KEY
    for name, value in req.headers.items():
        assert gateway_key not in value, f"gateway key leaked upstream in {name}"
    assert "claude-code-20250219" in req.headers.get("anthropic-beta", "")
    assert req.headers.get("anthropic-version") == "2023-06-01"
    body = req.json()
    assert body["model"] == UPSTREAM_MODEL
    assert body["stream"] is True
    assert body["max_tokens"] == 32000
    # Unknown-to-a-translator fields Claude Code relies on survive verbatim.
    assert json.loads(body["metadata"]["user_id"])["session_id"]
    system = body["system"]
    assert system[0]["text"].startswith("x-anthropic-billing-header:")
    assert [s.get("cache_control") for s in system[1:]] == [{"type": "ephemeral"}] * 2
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert any(t.get("defer_loading") is True for t in body["tools"])
    assert any(t["name"] == "Bash" for t in body["tools"])


# -- the turns ------------------------------------------------------------------------------
def test_text_turn_with_auth_token(
    claude_bin: Path, fake: ScriptedAnthropic, gateway: GatewayProcess, tmp_path: Path
) -> None:
    start = len(fake.requests)
    run = run_claude(
        claude_bin, tmp_path, gateway.url, {"ANTHROPIC_AUTH_TOKEN": ALICE_KEY}, "say hi"
    )
    requests = fake.requests[start:]
    diag = _diagnose(run, gateway, requests)
    assert _assert_ok(run, diag)["result"] == TEXT_REPLY, diag
    sent = _messages_requests(fake, start)
    assert sent, diag
    for req in sent:
        _assert_passthrough(req, ALICE_KEY)
    assert any(b.get("text") == "say hi" for b in _last_user_blocks(sent[0].json())), diag


def test_tool_turn_runs_bash_and_returns_its_output(
    claude_bin: Path, fake: ScriptedAnthropic, gateway: GatewayProcess, tmp_path: Path
) -> None:
    start = len(fake.requests)
    prompt = f"{TOOL_MARKER}: run {TOOL_COMMAND} with Bash"
    auth = {"ANTHROPIC_AUTH_TOKEN": ALICE_KEY}
    args = ("--allowedTools", f"Bash({TOOL_COMMAND})")
    run = run_claude(claude_bin, tmp_path, gateway.url, auth, prompt, *args)
    requests = fake.requests[start:]
    diag = _diagnose(run, gateway, requests)
    result = _assert_ok(run, diag)
    assert result["result"] == FINAL_REPLY, diag
    assert result["num_turns"] == 2, diag
    sent = _messages_requests(fake, start)
    for req in sent:
        _assert_passthrough(req, ALICE_KEY)
    bodies = [req.json() for req in sent]
    with_result = [
        body
        for body in bodies
        if any(b.get("type") == "tool_result" for b in _last_user_blocks(body))
    ]
    assert len(with_result) == 1, diag
    body = with_result[0]
    tool_result = next(b for b in _last_user_blocks(body) if b.get("type") == "tool_result")
    assert "hello" in json.dumps(tool_result["content"]), diag
    assert not tool_result.get("is_error"), diag
    # The same request replays the assistant's tool_use (from the fake's stream) before it.
    assert body["messages"][-2]["role"] == "assistant", diag
    tool_use = body["messages"][-2]["content"][-1]
    assert tool_use["type"] == "tool_use" and tool_use["name"] == "Bash", diag
    assert tool_use["input"]["command"] == TOOL_COMMAND, diag
    assert tool_use["id"] == tool_result["tool_use_id"], diag


def test_text_turn_with_api_key_under_anthropic_prefix(
    claude_bin: Path, fake: ScriptedAnthropic, gateway: GatewayProcess, tmp_path: Path
) -> None:
    start = len(fake.requests)
    base_url = gateway.url + "/anthropic"
    run = run_claude(claude_bin, tmp_path, base_url, {"ANTHROPIC_API_KEY": BOB_KEY}, "say hi")
    requests = fake.requests[start:]
    diag = _diagnose(run, gateway, requests)
    assert _assert_ok(run, diag)["result"] == TEXT_REPLY, diag
    sent = _messages_requests(fake, start)
    assert sent, diag
    for req in sent:
        _assert_passthrough(req, BOB_KEY)


def _mock_turn(claude: Path, gateway: GatewayProcess, tmp: Path) -> tuple[ClaudeRun, str]:
    """``say hi`` to ``local/echo`` with Claude Code's full tool set."""
    auth = {"ANTHROPIC_AUTH_TOKEN": ALICE_KEY}
    run = run_claude(claude, tmp, gateway.url, auth, "say hi", model="local/echo")
    return run, _diagnose(run, gateway, [])


def test_text_turn_against_mock_provider(
    claude_bin: Path, fake: ScriptedAnthropic, gateway: GatewayProcess, tmp_path: Path
) -> None:
    # The mock echoes the typed prompt: not Claude Code's role:system turn or its
    # <system-reminder> blocks, and it calls no tool the prompt does not name.
    start = len(fake.requests)
    run, diag = _mock_turn(claude_bin, gateway, tmp_path)
    assert _assert_ok(run, diag)["result"] == "mock echo: say hi", diag
    assert fake.requests[start:] == [], diag


# -- an OpenAI-compatible provider behind the Anthropic surface ------------------------------
OPENAI_UPSTREAM_KEY = "sk-oai-upstream-0123456789abcdef"
OPENAI_UPSTREAM_MODEL = "gpt-4o-mini"
OPENAI_MODEL = "oai/gpt"
OPENAI_TEXT_REPLY = "Hi from the fake OpenAI upstream."
PARALLEL_MARKER = "llmrelay-parallel-tools"
PARALLEL_COMMANDS = ("echo hello", "echo world")
PARALLEL_FINAL_REPLY = "Both commands printed their words."
ERROR_MARKER = "llmrelay-upstream-400"
TOOL_SEARCH_MARKER = "llmrelay-tool-search"
TOOL_SEARCH_FINAL_REPLY = "WebFetch is loaded."
# What api.openai.com answers when max_completion_tokens exceeds the model's output limit.
ERROR_MESSAGE = (
    "max_tokens is too large: 32000. This model supports at most 16384 completion tokens, "
    "whereas you provided 32000."
)
# Anthropic-only request fields that must not reach an OpenAI-compatible body.
ANTHROPIC_ONLY_KEYS = frozenset(
    {"cache_control", "thinking", "context_management", "metadata", "defer_loading", "system"}
)


class ScriptedOpenAI(FakeOpenAI):
    """A :class:`FakeOpenAI` whose default chat completion is computed from the request.

    * ``role: tool`` messages after the last assistant message -> the final text
      (``PARALLEL_FINAL_REPLY`` if the conversation asked for parallel calls, else
      ``FINAL_REPLY``);
    * tools are offered and the last user message contains ``PARALLEL_MARKER`` -> two Bash
      calls (``PARALLEL_COMMANDS``) in one streamed response;
    * tools are offered and the last user message contains ``TOOL_MARKER`` -> one Bash call
      running ``TOOL_COMMAND``;
    * tools are offered and the last user message contains ``TOOL_SEARCH_MARKER`` -> a
      ``ToolSearch`` call selecting ``WebFetch`` (a deferred tool);
    * the last user message contains ``ERROR_MARKER`` -> a 400 ``invalid_request_error``
      (``ERROR_MESSAGE``);
    * anything else -> ``OPENAI_TEXT_REPLY``.
    """

    def _default_reply(self, path: str, raw: bytes) -> Reply:
        req = json.loads(raw)
        messages = req.get("messages", [])
        last_assistant = max(
            (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1
        )
        after = messages[last_assistant + 1 :]
        asked = "".join(_openai_text(m) for m in messages if m.get("role") == "user")
        last_user: dict[str, Any] = next(
            (m for m in reversed(messages) if m.get("role") == "user"), {}
        )
        calls: list[dict[str, Any]] = []
        text = OPENAI_TEXT_REPLY
        if ERROR_MARKER in _openai_text(last_user):
            return error_reply(400, ERROR_MESSAGE, param="max_tokens", code="invalid_value")
        if last_assistant >= 0 and any(m.get("role") == "tool" for m in after):
            text = FINAL_REPLY
            if PARALLEL_MARKER in asked:
                text = PARALLEL_FINAL_REPLY
            elif TOOL_SEARCH_MARKER in asked:
                text = TOOL_SEARCH_FINAL_REPLY
        elif req.get("tools") and TOOL_SEARCH_MARKER in _openai_text(last_user):
            calls = [self._call("ToolSearch", {"query": "select:WebFetch", "max_results": 5})]
        elif req.get("tools") and PARALLEL_MARKER in _openai_text(last_user):
            calls = [self._bash(cmd) for cmd in PARALLEL_COMMANDS]
        elif req.get("tools") and TOOL_MARKER in _openai_text(last_user):
            calls = [self._bash(TOOL_COMMAND)]
        usage = {
            "prompt_tokens": count_tokens_for(raw),
            "completion_tokens": 10,
            "total_tokens": count_tokens_for(raw) + 10,
        }
        head = {
            "id": f"chatcmpl-fake{next(self._ids):020d}",
            "created": CREATED,
            "model": req.get("model", OPENAI_UPSTREAM_MODEL),
            "system_fingerprint": "fp_fake0000",
        }
        finish = "tool_calls" if calls else "stop"
        if not req.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if calls else text}
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            return json_reply(
                {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        return chunks_reply(_openai_chunks(head, text, calls, finish, usage))

    def _bash(self, command: str) -> dict[str, Any]:
        return self._call("Bash", {"command": command, "description": f"Run {command}"})

    def _call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        fn = {"name": name, "arguments": json.dumps(arguments)}
        return {"id": f"call_fake{next(self._ids):020d}", "type": "function", "function": fn}


def _openai_text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _openai_chunks(
    head: dict[str, Any],
    text: str,
    calls: list[dict[str, Any]],
    finish: str,
    usage: dict[str, Any],
) -> list[dict[str, Any]]:
    """A ``chat.completion.chunk`` stream as api.openai.com writes it with include_usage.

    The first chunk carries the role; each tool call opens with a fragment holding its
    ``index``, ``id``, ``type`` and name (empty arguments), then its arguments follow in
    three pieces; the finish chunk has an empty delta; the usage chunk has ``choices: []``.
    """
    head = {**head, "object": "chat.completion.chunk"}
    deltas: list[dict[str, Any]] = []
    if calls:
        for index, call in enumerate(calls):
            opening = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            deltas.append({"tool_calls": [opening]})
            args = call["function"]["arguments"]
            step = -(-len(args) // 3)
            for i in range(0, len(args), step):
                fragment = {"index": index, "function": {"arguments": args[i : i + step]}}
                deltas.append({"tool_calls": [fragment]})
        deltas[0] = {"role": "assistant", "content": None, "refusal": None, **deltas[0]}
    else:
        deltas.append({"role": "assistant", "content": "", "refusal": None})
        deltas += [{"content": text[i : i + 8]} for i in range(0, len(text), 8)]

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**head, "choices": [choice], "usage": None}

    out = [chunk(d, None) for d in deltas] + [chunk({}, finish)]
    return [*out, {**head, "choices": [], "usage": usage}]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[ScriptedOpenAI]:
    f = ScriptedOpenAI(expected_api_key=OPENAI_UPSTREAM_KEY)
    f.start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def openai_gateway(
    fake_openai: ScriptedOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("openai-gateway")
    providers = {
        "oai": {
            "type": "openai",
            "base_url": fake_openai.url + "/v1",
            "api_key": OPENAI_UPSTREAM_KEY,
            "models": {"gpt": OPENAI_UPSTREAM_MODEL},
        },
    }
    gw = start_gateway(tmp, base_config(tmp, providers), "--log-level", "debug")
    yield gw
    gw.stop()


def _run_openai(
    claude: Path, gw: GatewayProcess, fake: ScriptedOpenAI, tmp: Path, prompt: str, *args: str
) -> tuple[ClaudeRun, list[RecordedRequest], str]:
    """One ``claude -p`` turn on ``OPENAI_MODEL``; its chat requests and a diagnosis."""
    start = len(fake.requests)
    auth = {"ANTHROPIC_AUTH_TOKEN": ALICE_KEY}
    run = run_claude(claude, tmp, gw.url, auth, prompt, *args, model=OPENAI_MODEL)
    requests = fake.requests[start:]
    bodies = "\n".join(r.body.decode(errors="replace")[:4000] for r in requests)
    diag = _diagnose(run, gw, requests) + f"\nupstream bodies (cut):\n{bodies}"
    return run, [r for r in requests if r.path == "/v1/chat/completions"], diag


def _keys_deep(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set(obj).union(*(_keys_deep(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_keys_deep(v) for v in obj))
    return set()


def _assert_openai_request(req: RecordedRequest, gateway_key: str) -> dict[str, Any]:
    """What every Chat Completions request translated from Claude Code must look like."""
    assert req.method == "POST"
    assert req.path == "/v1/chat/completions"
    assert req.headers.get("authorization") == f"Bearer {OPENAI_UPSTREAM_KEY}"
    for name, value in req.headers.items():
        assert gateway_key not in value, f"gateway key leaked upstream in {name}"
        assert not name.startswith("anthropic-"), f"Anthropic header {name} leaked upstream"
    assert "x-api-key" not in req.headers
    body: dict[str, Any] = req.json()
    assert body["model"] == OPENAI_UPSTREAM_MODEL
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    # Searched at any depth: Claude Code's tool schemas happen to use none of these names as
    # keys, and "system" may only appear as a role value.
    leaked = _keys_deep(body) & ANTHROPIC_ONLY_KEYS
    assert not leaked, f"Anthropic-only keys leaked into the OpenAI body: {sorted(leaked)}"
    messages = body["messages"]
    assert messages[0]["role"] == "system"
    assert isinstance(messages[0]["content"], str) and messages[0]["content"]
    for msg in messages:
        assert msg["role"] in {"system", "user", "assistant", "tool"}, msg
    tools = body["tools"]
    assert tools and all(t["type"] == "function" for t in tools)
    for t in tools:
        assert set(t) == {"type", "function"}
        assert isinstance(t["function"]["name"], str)
        assert isinstance(t["function"].get("parameters", {}), dict)
    bash = next(t["function"] for t in tools if t["function"]["name"] == "Bash")
    assert bash["parameters"]["type"] == "object"
    assert "command" in bash["parameters"]["properties"]
    return body


def _tool_exchange(body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The last assistant message (with tool_calls) and the ``tool`` messages right after it."""
    messages = body["messages"]
    i = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    tool_msgs = []
    for m in messages[i + 1 :]:
        if m["role"] != "tool":
            break
        tool_msgs.append(m)
    return messages[i], tool_msgs


def test_openai_provider_text_turn(
    claude_bin: Path,
    fake_openai: ScriptedOpenAI,
    openai_gateway: GatewayProcess,
    tmp_path: Path,
) -> None:
    run, sent, diag = _run_openai(claude_bin, openai_gateway, fake_openai, tmp_path, "say hi")
    assert _assert_ok(run, diag)["result"] == OPENAI_TEXT_REPLY, diag
    assert sent, diag
    for req in sent:
        _assert_openai_request(req, ALICE_KEY)
    first = sent[0].json()
    # Claude Code's profile for an unknown model name, as translated: its three system blocks
    # joined into the leading system message (minus the billing line), the user turn, then
    # a mid-conversation system turn (environment, deferred tools, agents, skills).
    messages = first["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "system"], diag
    assert "x-anthropic-billing-header" not in messages[0]["content"], diag
    assert messages[0]["content"], diag
    assert "say hi" in _openai_text(messages[1]), diag
    assert "# Environment" in messages[2]["content"], diag
    assert first["max_completion_tokens"] == 32000, diag
    assert json.loads(first["user"])["session_id"], diag  # metadata.user_id -> user
    assert any(t["function"]["name"] == "Bash" for t in first["tools"]), diag


def test_openai_provider_tool_turn(
    claude_bin: Path,
    fake_openai: ScriptedOpenAI,
    openai_gateway: GatewayProcess,
    tmp_path: Path,
) -> None:
    prompt = f"{TOOL_MARKER}: run {TOOL_COMMAND} with Bash"
    args = ("--allowedTools", f"Bash({TOOL_COMMAND})")
    run, sent, diag = _run_openai(claude_bin, openai_gateway, fake_openai, tmp_path, prompt, *args)
    result = _assert_ok(run, diag)
    assert result["result"] == FINAL_REPLY, diag
    assert result["num_turns"] == 2, diag
    for req in sent:
        _assert_openai_request(req, ALICE_KEY)
    bodies = [req.json() for req in sent]
    with_tool = [b for b in bodies if any(m["role"] == "tool" for m in b["messages"])]
    assert len(with_tool) == 1, diag
    assistant, tool_msgs = _tool_exchange(with_tool[0])
    assert len(tool_msgs) == 1, diag
    (call,) = assistant["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "Bash", diag
    assert json.loads(call["function"]["arguments"])["command"] == TOOL_COMMAND, diag
    assert call["id"].startswith("call_fake"), diag
    assert tool_msgs[0]["tool_call_id"] == call["id"], diag
    assert "hello" in _openai_text(tool_msgs[0]), diag
    assert not _openai_text(tool_msgs[0]).startswith("Error: "), diag


def test_openai_provider_parallel_tool_calls(
    claude_bin: Path,
    fake_openai: ScriptedOpenAI,
    openai_gateway: GatewayProcess,
    tmp_path: Path,
) -> None:
    prompt = f"{PARALLEL_MARKER}: run {' and '.join(PARALLEL_COMMANDS)} with Bash"
    args = ("--allowedTools", *(f"Bash({cmd})" for cmd in PARALLEL_COMMANDS))
    run, sent, diag = _run_openai(claude_bin, openai_gateway, fake_openai, tmp_path, prompt, *args)
    result = _assert_ok(run, diag)
    assert result["result"] == PARALLEL_FINAL_REPLY, diag
    # Claude Code reports num_turns 3 here for two model requests, so count requests instead.
    assert len(sent) == 2, diag
    for req in sent:
        _assert_openai_request(req, ALICE_KEY)
    bodies = [req.json() for req in sent]
    with_tool = [b for b in bodies if any(m["role"] == "tool" for m in b["messages"])]
    assert len(with_tool) == 1, diag
    assistant, tool_msgs = _tool_exchange(with_tool[0])
    calls = assistant["tool_calls"]
    assert [json.loads(c["function"]["arguments"])["command"] for c in calls] == list(
        PARALLEL_COMMANDS
    ), diag
    assert len(tool_msgs) == 2, diag
    by_id = {m["tool_call_id"]: _openai_text(m) for m in tool_msgs}
    assert set(by_id) == {c["id"] for c in calls}, diag
    for c, word in zip(calls, ("hello", "world"), strict=True):
        assert word in by_id[c["id"]], diag


def test_openai_provider_400_reaches_claude_code(
    claude_bin: Path,
    fake_openai: ScriptedOpenAI,
    openai_gateway: GatewayProcess,
    tmp_path: Path,
) -> None:
    # Claude Code asks for max_tokens 32000 whatever the model; gpt-4o(-mini) allow 16384,
    # so this is the 400 a real OpenAI model gives. It must reach Claude Code as an
    # Anthropic invalid_request_error with OpenAI's message, and not be retried as a 5xx.
    prompt = f"{ERROR_MARKER}: say hi"
    run, sent, diag = _run_openai(claude_bin, openai_gateway, fake_openai, tmp_path, prompt)
    assert run.returncode == 1, diag
    result = run.result()
    assert result["is_error"] is True, diag
    assert result["api_error_status"] == 400, diag
    assert ERROR_MESSAGE in result["result"], diag
    # Claude Code itself resends a 400 without its optional features (deferred tools, the
    # thinking-token-count beta, thinking.display): six attempts for this model name, the
    # same count as on the Anthropic passthrough. The translator drops those features, so
    # the first three OpenAI bodies are the same. Never a retry loop beyond that.
    assert 1 <= len(sent) <= 6, diag
    for req in sent:
        _assert_openai_request(req, ALICE_KEY)


def test_openai_provider_tool_search_turn(
    claude_bin: Path,
    fake_openai: ScriptedOpenAI,
    openai_gateway: GatewayProcess,
    tmp_path: Path,
) -> None:
    # Claude Code offers ToolSearch plus a defer_loading placeholder and lists deferred tools
    # in a system turn. Its ToolSearch result is a tool_result of tool_reference blocks; the
    # gateway renders them as text (every tool reaches OpenAI fully declared), so the turn
    # goes through without a 400.
    log_start = len(openai_gateway.log())
    prompt = f"{TOOL_SEARCH_MARKER}: load the WebFetch tool"
    run, sent, diag = _run_openai(claude_bin, openai_gateway, fake_openai, tmp_path, prompt)
    assert _assert_ok(run, diag)["result"] == TOOL_SEARCH_FINAL_REPLY, diag
    for req in sent:
        _assert_openai_request(req, ALICE_KEY)
    assert len(sent) == 2, diag
    first, second = (req.json() for req in sent)
    assert any(t["function"]["name"] == "ToolSearch" for t in first["tools"]), diag
    assert "WebFetch" in {t["function"]["name"] for t in second["tools"]}, diag
    assistant, tool_msgs = _tool_exchange(second)
    (call,) = assistant["tool_calls"]
    assert call["function"]["name"] == "ToolSearch", diag
    assert [m["tool_call_id"] for m in tool_msgs] == [call["id"]], diag
    assert "Tool loaded: WebFetch" in str(tool_msgs[0]["content"]), diag
    assert '"status":400' not in openai_gateway.log()[log_start:], diag


# -- Claude on Bedrock and on Vertex AI behind the Anthropic surface -------------------------
# Claude Code picks its features from the model name: a Sonnet 4.5 name turns on thinking and
# the betas that go with it, some of which each cloud accepts and some of which it does not
# (``claude-code-20250219`` among the latter), so the gateway's filter has work to do.
CLOUD_MODEL = "claude-sonnet-4-5"
BEDROCK_MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX_MODEL_ID = "claude-sonnet-4-5@20250929"
VERTEX_PROJECT = "fake-project"
VERTEX_REGION = "us-east5"
STREAM_OP = "invoke-with-response-stream"


class ScriptedBedrock(FakeBedrock):
    """A :class:`FakeBedrock` answering like :class:`ScriptedAnthropic`, as event-stream frames.

    FakeBedrock builds its default reply in ``_echo`` (after verifying SigV4 and the body),
    from the decoded body without ``model``/``stream``.
    """

    def _echo(self, payload: dict[str, Any], model_id: str, *, stream: bool) -> Reply:
        raw = json.dumps(payload).encode()
        msg = _scripted_message(self, {**payload, "model": model_id}, raw)
        if not stream:
            return bedrock_message_reply(msg)
        return bedrock_stream_reply([event for _, event in _stream_events(msg)])


class ScriptedVertex(FakeVertex):
    """A :class:`FakeVertex` answering like :class:`ScriptedAnthropic` (plain Anthropic SSE).

    FakeVertex calls ``_default_message`` with the body plus the model from the URL.
    """

    def _default_message(self, raw: bytes) -> Reply:
        req = json.loads(raw)
        msg = _scripted_message(self, req, raw)
        return sse_reply(_stream_events(msg)) if req.get("stream") else json_reply(msg)


@dataclass
class CloudFakes:
    bedrock: ScriptedBedrock
    vertex: ScriptedVertex
    token: FakeGoogleToken
    gw: GatewayProcess


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudFakes]:
    tmp = tmp_path_factory.mktemp("cloud-gateway")
    bedrock, token = ScriptedBedrock(), FakeGoogleToken()
    bedrock.start()
    token.start()
    vertex = ScriptedVertex(token_server=token)
    vertex.start()
    try:
        sa_file = token.write_service_account_file(tmp / "sa.json", project_id=VERTEX_PROJECT)
        providers = {
            "bedrock": {
                "type": "bedrock",
                "region": "us-east-1",
                "endpoint_url": bedrock.url,
                "access_key_id": TEST_ACCESS_KEY,
                "secret_access_key": TEST_SECRET_KEY,
                "models": {CLOUD_MODEL: BEDROCK_MODEL_ID},
            },
            "vertex": {
                "type": "vertex",
                "project": VERTEX_PROJECT,
                "region": VERTEX_REGION,
                "base_url": vertex.url + "/v1",
                "credentials_file": str(sa_file),
                "models": {CLOUD_MODEL: VERTEX_MODEL_ID},
            },
        }
        gw = start_gateway(tmp, base_config(tmp, providers), "--log-level", "debug")
        try:
            yield CloudFakes(bedrock, vertex, token, gw)
        finally:
            gw.stop()
    finally:
        for f in (bedrock, vertex, token):
            f.stop()


def _run_cloud(
    claude: Path, c: CloudFakes, fake: FakeAnthropic, cloud: str, tmp: Path, prompt: str, *args: str
) -> tuple[ClaudeRun, list[Any], str]:
    """One ``claude -p`` turn on ``<cloud>/CLOUD_MODEL``: the fake's requests and a diagnosis.

    Also checks, from the gateway's debug log, that Claude Code's own ``claude-code-20250219``
    beta reached the gateway and was dropped for this provider.
    """
    start = len(fake.requests)
    log_start = len(c.gw.log())
    auth = {"ANTHROPIC_AUTH_TOKEN": ALICE_KEY}
    run = run_claude(claude, tmp, c.gw.url, auth, prompt, *args, model=f"{cloud}/{CLOUD_MODEL}")
    requests = fake.requests[start:]
    lines = []
    for r in requests:
        target = getattr(r, "raw_path", "") or f"{r.path}?{r.query}"
        lines.append(f"{r.method} {target} {json.dumps(r.headers)}")
        lines.append(f"  body (cut): {r.body.decode(errors='replace')[:3000]}")
    diag = (
        f"exit {run.returncode}\nstdout: {run.stdout}\nstderr: {run.stderr}\n"
        "upstream requests:\n" + "\n".join(lines) + f"\ngateway log:\n{c.gw.log()[log_start:]}"
    )
    dropped = [
        entry["betas"]
        for line in c.gw.log()[log_start:].splitlines()
        if '"betas dropped"' in line
        for entry in [json.loads(line)]
        if entry.get("provider") == cloud
    ]
    assert dropped and all("claude-code-20250219" in betas for betas in dropped), diag
    return run, requests, diag


def _betas_of(value: str | None) -> list[str]:
    return [b.strip() for b in (value or "").split(",") if b.strip()]


def _assert_bedrock_request(req: BedrockRequest, diag: str) -> dict[str, Any]:
    """What every InvokeModelWithResponseStream request from a Claude Code turn must look like."""
    assert req.method == "POST", diag
    assert req.operation == STREAM_OP, diag
    assert req.model_id == BEDROCK_MODEL_ID, diag
    # One path segment, URL-encoded: it decodes to the model id and holds no raw "/".
    prefix, _, rest = req.raw_path.partition("/model/")
    segment, _, op = rest.partition("/")
    assert prefix == "" and op == STREAM_OP, diag
    assert urllib.parse.unquote(segment) == BEDROCK_MODEL_ID, diag
    # SigV4-signed with the configured key (the fake recomputes the signature; a bad one is 403).
    auth = req.headers.get("authorization", "")
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY}/"), diag
    assert "/us-east-1/bedrock/aws4_request" in auth, diag
    for name, value in req.headers.items():
        assert ALICE_KEY not in value, f"gateway key leaked upstream in {name}"
    assert "anthropic-beta" not in req.headers, diag
    body: dict[str, Any] = req.payload
    assert isinstance(body, dict), diag
    assert "model" not in body and "stream" not in body, diag
    assert body["anthropic_version"] == "bedrock-2023-05-31", diag
    betas = body.get("anthropic_beta", [])
    assert set(betas) <= set(BEDROCK_BETAS), f"betas outside the allow list: {betas}\n{diag}"
    assert "claude-code-20250219" not in betas, diag
    assert "interleaved-thinking-2025-05-14" in betas, diag  # an allowed one survives
    assert ALICE_KEY not in json.dumps(body), diag
    assert any(t.get("name") == "Bash" for t in body["tools"]), diag
    return body


def _assert_vertex_request(req: VertexRequest, c: CloudFakes, diag: str) -> dict[str, Any]:
    """What every streamRawPredict request from a Claude Code turn must look like."""
    assert req.method == "POST", diag
    assert (req.project, req.region, req.model, req.specifier) == (
        VERTEX_PROJECT,
        VERTEX_REGION,
        VERTEX_MODEL_ID,
        "streamRawPredict",
    ), diag
    auth = req.headers.get("authorization", "")
    assert auth.startswith("Bearer "), diag
    assert c.token.is_valid(auth.removeprefix("Bearer ")), diag
    for name, value in req.headers.items():
        assert ALICE_KEY not in value, f"gateway key leaked upstream in {name}"
    assert "x-api-key" not in req.headers, diag
    betas = _betas_of(req.headers.get("anthropic-beta"))
    assert set(betas) <= set(VERTEX_BETAS), f"betas outside the allow list: {betas}\n{diag}"
    assert "claude-code-20250219" not in betas, diag
    assert "interleaved-thinking-2025-05-14" in betas, diag  # an allowed one survives
    body: dict[str, Any] = req.json()
    assert "model" not in body and body["stream"] is True, diag
    assert body["anthropic_version"] == "vertex-2023-10-16", diag
    assert any(t.get("name") == "Bash" for t in body["tools"]), diag
    return body


def _assert_cloud_tool_turn(run: ClaudeRun, bodies: list[dict[str, Any]], diag: str) -> None:
    result = _assert_ok(run, diag)
    assert result["result"] == FINAL_REPLY, diag
    assert result["num_turns"] == 2, diag
    assert len(bodies) == 2, diag
    first, second = bodies
    assert not any(b.get("type") == "tool_result" for b in _last_user_blocks(first)), diag
    tool_result = next(
        (b for b in _last_user_blocks(second) if b.get("type") == "tool_result"), None
    )
    assert tool_result is not None, diag
    assert "hello" in json.dumps(tool_result["content"]), diag
    assert not tool_result.get("is_error"), diag
    assert second["messages"][-2]["role"] == "assistant", diag
    tool_use = second["messages"][-2]["content"][-1]
    assert tool_use["type"] == "tool_use" and tool_use["name"] == "Bash", diag
    assert tool_use["input"]["command"] == TOOL_COMMAND, diag
    assert tool_use["id"] == tool_result["tool_use_id"], diag


def test_bedrock_text_turn(claude_bin: Path, clouds: CloudFakes, tmp_path: Path) -> None:
    run, sent, diag = _run_cloud(claude_bin, clouds, clouds.bedrock, "bedrock", tmp_path, "say hi")
    assert _assert_ok(run, diag)["result"] == TEXT_REPLY, diag
    assert sent, diag
    bodies = [_assert_bedrock_request(req, diag) for req in sent]
    assert any(b.get("text") == "say hi" for b in _last_user_blocks(bodies[0])), diag


def test_bedrock_tool_turn(claude_bin: Path, clouds: CloudFakes, tmp_path: Path) -> None:
    prompt = f"{TOOL_MARKER}: run {TOOL_COMMAND} with Bash"
    args = ("--allowedTools", f"Bash({TOOL_COMMAND})")
    run, sent, diag = _run_cloud(
        claude_bin, clouds, clouds.bedrock, "bedrock", tmp_path, prompt, *args
    )
    bodies = [_assert_bedrock_request(req, diag) for req in sent]
    _assert_cloud_tool_turn(run, bodies, diag)


def test_vertex_text_turn(claude_bin: Path, clouds: CloudFakes, tmp_path: Path) -> None:
    run, sent, diag = _run_cloud(claude_bin, clouds, clouds.vertex, "vertex", tmp_path, "say hi")
    assert _assert_ok(run, diag)["result"] == TEXT_REPLY, diag
    assert sent, diag
    bodies = [_assert_vertex_request(req, clouds, diag) for req in sent]
    assert any(b.get("text") == "say hi" for b in _last_user_blocks(bodies[0])), diag


def test_vertex_tool_turn(claude_bin: Path, clouds: CloudFakes, tmp_path: Path) -> None:
    prompt = f"{TOOL_MARKER}: run {TOOL_COMMAND} with Bash"
    args = ("--allowedTools", f"Bash({TOOL_COMMAND})")
    run, sent, diag = _run_cloud(
        claude_bin, clouds, clouds.vertex, "vertex", tmp_path, prompt, *args
    )
    bodies = [_assert_vertex_request(req, clouds, diag) for req in sent]
    _assert_cloud_tool_turn(run, bodies, diag)
