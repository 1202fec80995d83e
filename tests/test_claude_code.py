"""Claude Code (the real CLI) as a client of llmrelay: opt-in, end to end, offline.

Runs ``claude -p`` (``@anthropic-ai/claude-code`` pinned to ``CLAUDE_CODE_VERSION``) against a
``llmrelay serve`` process whose ``anthropic`` provider points at a scripted
:class:`FakeAnthropic`, and checks what reaches the upstream. See
``/work/shared/reference/claude-code-client.md`` for the request profile this relies on.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import ALICE_KEY, BOB_KEY, GatewayProcess, base_config, start_gateway
from .fakes.anthropic_upstream import (
    FakeAnthropic,
    RecordedRequest,
    Reply,
    count_tokens_for,
    json_reply,
    sse_reply,
)

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
        last = _last_user_blocks(req)
        content: list[dict[str, Any]]
        if any(b.get("type") == "tool_result" for b in last):
            content, stop = [{"type": "text", "text": FINAL_REPLY}], "end_turn"
        elif req.get("tools") and any(TOOL_MARKER in str(b.get("text", "")) for b in last):
            tool_input = {"command": TOOL_COMMAND, "description": "Print hello"}
            block = {"type": "tool_use", "id": self._next_id("toolu"), "name": "Bash"}
            content, stop = [{**block, "input": tool_input}], "tool_use"
        else:
            content, stop = [{"type": "text", "text": TEXT_REPLY}], "end_turn"
        usage = {"input_tokens": count_tokens_for(raw), "output_tokens": 10}
        msg = {
            "id": self._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": req.get("model", UPSTREAM_MODEL),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        return sse_reply(_stream_events(msg)) if req.get("stream") else json_reply(msg)


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
