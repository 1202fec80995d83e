"""The request log through real gateways, the official SDKs and the admin API: a known mix
of calls listed and filtered on SQLite and PostgreSQL, pages walked with the cursor, one
fallback call's attempts, and body capture (redacted, capped, per key, ``errors`` mode,
streams stored as the assembled message: Anthropic and OpenAI passthroughs and a
translation)."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from llmrelay.obs.request_log import decode_cursor, encode_cursor
from llmrelay.stores.database import upgrade
from tests.conftest import ALICE_KEY, BOB_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI
from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip

ADMIN_KEY = "sk-admin-0123456789abcdef0123"
SECRET = "sk-ant-api03-xxxx"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def config(tmp: Path, gpt: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    providers = {
        "mock": {"type": "mock", "models": {"echo": "echo"}},
        "busy": {"type": "mock", "models": {"echo": "echo"}, "error_status": 529},
        "openai": {
            "type": "openai",
            "base_url": gpt.url + "/v1",
            "api_key": "sk-openai-upstream",
            "models": {"gpt": "gpt-4o-mini"},
        },
    }
    cfg = base_config(
        tmp,
        providers,
        models={
            "fallback": {
                "targets": [
                    {"model": "busy/echo", "priority": 1},
                    {"model": "mock/echo", "priority": 2},
                ]
            }
        },
        routing={"cooldown": {"failures": 1000, "max_retry_after_s": 0}},
        admin={"key": ADMIN_KEY},
    )
    cfg["auth"]["keys"][0]["team"] = "red"
    cfg["auth"]["keys"][1]["team"] = "blue"
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module")
def gpt() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


def admin(gw: GatewayProcess, path: str, **params: Any) -> tuple[int, Any]:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    req = urllib.request.Request(
        f"{gw.url}{path}{'?' + query if query else ''}",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def detail(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    """The call's record once the usage writer stored it."""
    deadline = time.monotonic() + 10
    while True:
        status, body = admin(gw, f"/admin/requests/{request_id}")
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            return dict(body)
        time.sleep(0.05)


def claude(key: str, gw: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=gw.url, max_retries=0)


def gpt_client(key: str, gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gw.url + "/v1", max_retries=0)


def ask(gw: GatewayProcess, key: str, model: str, text: str = "Hello", **kw: Any) -> str:
    """An Anthropic SDK call; its request id (whatever the status)."""
    try:
        raw = claude(key, gw).messages.with_raw_response.create(
            model=model, max_tokens=64, messages=[{"role": "user", "content": text}], **kw
        )
    except anthropic.APIStatusError as err:
        return str(err.response.headers["request-id"])
    return str(raw.headers["request-id"])


def chat(gw: GatewayProcess, key: str, model: str, text: str = "Hello") -> str:
    """An OpenAI SDK call; its request id."""
    raw = gpt_client(key, gw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    return str(raw.headers["x-request-id"])


# A known mix of calls, then the list and its filters.


@dataclass
class Made:
    request_id: str
    key: str
    team: str
    model: str
    provider: str
    status: int


@dataclass
class Mix:
    gw: GatewayProcess
    calls: list[Made]  # oldest first


def make_mix(gw: GatewayProcess) -> list[Made]:
    out = []
    plan = [
        (ALICE_KEY, "mock/echo", "anthropic", "mock", 200),
        (BOB_KEY, "mock/echo", "anthropic", "mock", 200),
        (ALICE_KEY, "mock/echo", "openai", "mock", 200),
        (BOB_KEY, "busy/echo", "anthropic", "busy", 529),
        (ALICE_KEY, "fallback", "anthropic", "mock", 200),
        (BOB_KEY, "openai/gpt", "openai", "openai", 200),
        (ALICE_KEY, "nope/nothing", "anthropic", "", 404),
        (ALICE_KEY, "busy/echo", "anthropic", "busy", 529),
        (BOB_KEY, "fallback", "anthropic", "mock", 200),
        (ALICE_KEY, "openai/gpt", "openai", "openai", 200),
        (BOB_KEY, "mock/echo", "anthropic", "mock", 200),
        (ALICE_KEY, "mock/echo", "anthropic", "mock", 200),
    ]
    for key, model, sdk, provider, status in plan:
        rid = chat(gw, key, model) if sdk == "openai" else ask(gw, key, model)
        name, team = ("alice", "red") if key == ALICE_KEY else ("bob", "blue")
        out.append(Made(rid, name, team, model, provider, status))
    detail(gw, out[-1].request_id)  # all written (in order)
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, gpt: FakeOpenAI
) -> Iterator[Mix]:
    tmp = tmp_path_factory.mktemp(f"mix-{request.param}")
    if request.param == "sqlite":
        gw = start_gateway(tmp, config(tmp, gpt))
        try:
            yield Mix(gw, make_mix(gw))
        finally:
            gw.stop()
        return
    with fresh_pg_schema(postgres_url_or_skip()) as url:
        upgrade(url)
        gw = start_gateway(tmp, config(tmp, gpt, database=url))
        try:
            yield Mix(gw, make_mix(gw))
        finally:
            gw.stop()


def listed(gw: GatewayProcess, **params: Any) -> list[str]:
    status, body = admin(gw, "/admin/requests", **params)
    assert status == 200, body
    return [r["request_id"] for r in body["data"]]


FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({}, lambda c: True),
    ({"key": "bob"}, lambda c: c.key == "bob"),
    ({"team": "red"}, lambda c: c.team == "red"),
    ({"model": "fallback"}, lambda c: c.model == "fallback"),
    ({"provider": "openai"}, lambda c: c.provider == "openai"),
    ({"status": "529"}, lambda c: c.status == 529),
    ({"status": "5xx"}, lambda c: 500 <= c.status < 600),
    ({"status": "4xx"}, lambda c: 400 <= c.status < 500),
    ({"key": "alice", "status": "2xx"}, lambda c: c.key == "alice" and c.status == 200),
    ({"team": "blue", "model": "mock/echo", "provider": "mock"},
     lambda c: c.team == "blue" and c.model == "mock/echo"),
    ({"key": "alice", "provider": "busy", "since": "1h"},
     lambda c: c.key == "alice" and c.provider == "busy"),
    ({"until": "1h"}, lambda c: False),
]  # fmt: skip


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_each_filter_alone_and_combined_newest_first(
    mix: Mix, params: dict[str, Any], keep: Any
) -> None:
    expected = [c.request_id for c in reversed(mix.calls) if keep(c)]
    assert listed(mix.gw, **params) == expected


def test_a_request_id_prefix_and_a_time_window(mix: Mix) -> None:
    target = mix.calls[4].request_id
    assert listed(mix.gw, request_id=target[:20]) == [target]
    _, first = admin(mix.gw, f"/admin/requests/{mix.calls[0].request_id}")
    _, last = admin(mix.gw, f"/admin/requests/{mix.calls[-1].request_id}")
    window = listed(mix.gw, since=str(first["ts"]), until=str(last["ts"]))
    assert window == [c.request_id for c in reversed(mix.calls[:-1])]


@pytest.mark.parametrize("limit", [1, 5, 12])
def test_the_cursor_walks_every_call_once(mix: Mix, limit: int) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        status, body = admin(mix.gw, "/admin/requests", limit=limit, cursor=cursor)
        assert status == 200 and len(body["data"]) <= limit
        seen += [r["request_id"] for r in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [c.request_id for c in reversed(mix.calls)]


def test_a_filtered_walk_keeps_its_filter(mix: Mix) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        _, body = admin(mix.gw, "/admin/requests", key="alice", limit=2, cursor=cursor)
        seen += [r["request_id"] for r in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [c.request_id for c in reversed(mix.calls) if c.key == "alice"]


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"status": "teapot"}, "status"),
        ({"since": "yesterday-ish"}, "since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        # id:99999999999999999999999999999, past the 64-bit row ids (was a 503 OverflowError)
        ({"cursor": "aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, "cursor"),
        ({"modle": "x"}, "modle"),
    ],
)
def test_bad_parameters_are_400_naming_them(mix: Mix, params: dict[str, str], names: str) -> None:
    status, body = admin(mix.gw, "/admin/requests", **params)
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert names in body["error"]["message"]


def test_a_cursor_holds_a_64_bit_signed_row_id() -> None:
    biggest = 2**63 - 1
    cursor = encode_cursor(biggest)
    assert cursor is not None and decode_cursor(cursor) == biggest
    for too_big in (str(biggest + 1), "9" * 5000):
        with pytest.raises(ValueError, match=r"^cursor: "):
            decode_cursor(base64.urlsafe_b64encode(f"id:{too_big}".encode()).decode())


def test_the_request_log_needs_the_admin_key(mix: Mix) -> None:
    for path in ("/admin/requests", f"/admin/requests/{mix.calls[0].request_id}"):
        req = urllib.request.Request(mix.gw.url + path, headers={"x-api-key": ALICE_KEY})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(req, timeout=5)
        assert caught.value.code == 401
        caught.value.close()
    status, body = admin(mix.gw, "/admin/requests/req_nothing")
    assert status == 404 and "req_nothing" in body["error"]["message"]


def test_a_fallback_calls_record_shows_its_attempts_and_route(mix: Mix) -> None:
    call = mix.calls[4]
    got = detail(mix.gw, call.request_id)
    assert (got["model"], got["routed_model"], got["rerouted"]) == ("fallback", "fallback", False)
    assert (got["provider"], got["status"], got["attempts"]) == ("mock", 200, 2)
    first, second = got["attempt_log"]
    assert (first["target"], first["status"], first["error_type"]) == (
        "busy/echo",
        529,
        "overloaded_error",
    )
    assert first["message"] and first["latency_s"] >= 0
    assert (second["target"], second["status"], second["error_type"]) == ("mock/echo", 200, None)
    assert got["surface"] == "anthropic" and got["user_agent"].startswith("Anthropic/Python")
    assert got["overhead_ms"] >= 0 and got["upstream_ms"] >= 0
    assert got["has_bodies"] is False and got["bodies"] is None


def test_every_call_has_its_attempts_and_a_failure_its_message(mix: Mix) -> None:
    single = detail(mix.gw, mix.calls[0].request_id)
    assert [a["target"] for a in single["attempt_log"]] == ["mock/echo"]
    failed = detail(mix.gw, mix.calls[3].request_id)
    assert failed["status"] == 529 and failed["error_type"] == "overloaded_error"
    assert failed["error_message"]
    unknown = detail(mix.gw, mix.calls[6].request_id)
    assert unknown["status"] == 404 and "nope/nothing" in unknown["error_message"]
    assert unknown["attempt_log"] is None and unknown["routed_model"] is None
    translated = detail(mix.gw, mix.calls[2].request_id)
    assert translated["surface"] == "openai" and translated["user_agent"].startswith("OpenAI/")


# Body capture.


@pytest.fixture(scope="module")
def capturing(
    tmp_path_factory: pytest.TempPathFactory, gpt: FakeOpenAI
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("capture")
    request_log = {
        "bodies": "none",
        "bodies_by_key": {"alice": "all"},
        "max_body_kb": 2,
        "redact": [r"secret-\d+"],
    }
    gw = start_gateway(tmp, config(tmp, gpt, observability={"request_log": request_log}))
    yield gw
    gw.stop()


def test_bodies_are_stored_redacted_for_the_key_that_asks_and_not_for_another(
    capturing: GatewayProcess,
) -> None:
    text = f"my key is {SECRET} and my code is secret-1234"
    mine = detail(
        capturing,
        ask(capturing, ALICE_KEY, "mock/echo", text, extra_headers={"traceparent": TRACEPARENT}),
    )
    assert mine["has_bodies"] is True and mine["trace_id"] == TRACE
    bodies = mine["bodies"]
    request = json.loads(bodies["request"])
    assert request["messages"][0]["content"] == "my key is [REDACTED] and my code is [REDACTED]"
    assert request["model"] == "mock/echo"  # what the client sent, not the upstream id
    response = json.loads(bodies["response"])
    assert response["type"] == "message"
    assert SECRET not in bodies["response"] and "[REDACTED]" in bodies["response"]
    assert not bodies["request_truncated"] and not bodies["response_truncated"]

    theirs = detail(capturing, ask(capturing, BOB_KEY, "mock/echo", text))
    assert theirs["has_bodies"] is False and theirs["bodies"] is None


def test_a_body_past_the_cap_is_cut_and_marked(capturing: GatewayProcess) -> None:
    got = detail(capturing, ask(capturing, ALICE_KEY, "mock/echo", "x" * 5000))
    bodies = got["bodies"]
    assert bodies["request_truncated"] and len(bodies["request"].encode()) <= 2048
    assert bodies["request"].startswith('{"max_tokens":64,"messages"')  # as the SDK sent it


def test_an_anthropic_passthrough_stream_is_stored_as_its_message(
    capturing: GatewayProcess,
) -> None:
    with claude(ALICE_KEY, capturing).messages.stream(
        model="mock/echo", max_tokens=64, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        final = stream.get_final_message()
        rid = stream.response.headers["request-id"]
    stored = json.loads(detail(capturing, rid)["bodies"]["response"])
    assert stored["type"] == "message" and stored["id"] == final.id
    assert stored["content"] == [b.model_dump(exclude_none=True) for b in final.content]
    assert stored["stop_reason"] == final.stop_reason
    assert stored["usage"]["output_tokens"] == final.usage.output_tokens


def stream_chat(gw: GatewayProcess, model: str) -> tuple[str, str]:
    raw = gpt_client(ALICE_KEY, gw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    return text, str(raw.headers["x-request-id"])


@pytest.mark.parametrize("model", ["openai/gpt", "mock/echo"], ids=["passthrough", "translated"])
def test_an_openai_stream_is_stored_as_a_chat_completion(
    capturing: GatewayProcess, model: str
) -> None:
    text, rid = stream_chat(capturing, model)
    assert text.endswith("echo: stream me")
    got = detail(capturing, rid)
    stored = json.loads(got["bodies"]["response"])
    assert stored["object"] == "chat.completion"
    assert stored["choices"][0]["message"]["content"] == text
    assert stored["choices"][0]["finish_reason"] == "stop"
    assert got["stream"] is True


@pytest.fixture(scope="module")
def errors_only(
    tmp_path_factory: pytest.TempPathFactory, gpt: FakeOpenAI
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("errors")
    gw = start_gateway(tmp, config(tmp, gpt, observability={"request_log": {"bodies": "errors"}}))
    yield gw
    gw.stop()


def test_errors_mode_keeps_only_the_failed_calls_bodies(errors_only: GatewayProcess) -> None:
    ok = detail(errors_only, ask(errors_only, ALICE_KEY, "mock/echo"))
    failed = detail(errors_only, ask(errors_only, BOB_KEY, "busy/echo"))
    assert ok["has_bodies"] is False and ok["bodies"] is None
    assert failed["has_bodies"] is True
    assert json.loads(failed["bodies"]["request"])["model"] == "busy/echo"
    assert json.loads(failed["bodies"]["response"])["error"]["type"] == "overloaded_error"


def test_the_openapi_document_is_served(capturing: GatewayProcess) -> None:
    status, doc = admin(capturing, "/admin/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    assert "/admin/requests/{request_id}" in doc["paths"]
