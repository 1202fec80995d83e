"""The native passthrough (docs/passthrough.md) through a real ``llmrelay serve``: the
Anthropic SDK's Message Batches and Files methods, ``/proxy/{account}/...``, account
permissions, path escapes and the usage rows they leave."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from llmrelay.policy.prices import BATCH_DISCOUNT, SHIPPED_PRICES
from tests.conftest import (
    ALICE_KEY,
    BOB_KEY,
    GatewayProcess,
    base_config,
    free_port,
    start_gateway,
)
from tests.fakes.anthropic_batches import BATCH_INPUT_TOKENS, BATCH_OUTPUT_TOKENS
from tests.fakes.anthropic_upstream import FakeAnthropic, deltas_reply, hang_reply, sse_reply
from tests.gateway_env import raw_request

UPSTREAM_KEY = "sk-ant-upstream-secret-42"
SECOND_KEY = "sk-ant-second-secret-4242"
CAROL_KEY = "sk-test-carol-0123456789abcdef"
DAVE_KEY = "sk-test-dave-0123456789abcdef"
MODEL = "claude-sonnet-4-6"
ADMIN_KEY = "admin-key-0123456789abcdef"


@dataclass
class Env:
    fake: FakeAnthropic
    second: FakeAnthropic
    gw: GatewayProcess

    def client(self, key: str = ALICE_KEY, account: str | None = None) -> anthropic.Anthropic:
        headers = {"x-llmrelay-account": account} if account else None
        return anthropic.Anthropic(
            api_key=key, base_url=self.gw.url, max_retries=0, default_headers=headers
        )

    def rows(self) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.gw.usage_db)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def row(self, request_id: str) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for r in self.rows():
                if r["request_id"] == request_id:
                    return r
            time.sleep(0.05)
        raise AssertionError(f"no usage row for {request_id}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("passthrough")
    fake, second = FakeAnthropic(expected_api_key=UPSTREAM_KEY), FakeAnthropic()
    fake.start()
    second.start()
    providers: dict[str, Any] = {
        "anthropic": {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": UPSTREAM_KEY,
            "models": {"claude": MODEL},
        },
        "second": {
            "type": "anthropic",
            "base_url": second.url,
            "api_key": SECOND_KEY,
            "models": {"claude": MODEL},
        },
        "local": {"type": "mock", "models": {"echo": "echo"}},
        "slow": {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": UPSTREAM_KEY,
            "models": {"claude": MODEL},
            "timeouts": {"read_s": 30, "total_s": 0.5},
        },
        "dead": {
            "type": "anthropic",
            "base_url": f"http://127.0.0.1:{free_port()}",
            "api_key": UPSTREAM_KEY,
            "models": {"claude": MODEL},
            "timeouts": {"connect_s": 2},
        },
    }
    keys = [
        {"name": "alice", "key": ALICE_KEY},
        {"name": "bob", "key": BOB_KEY, "models": ["anthropic/claude"]},
        {"name": "carol", "key": CAROL_KEY, "models": [], "allowed_accounts": ["second"]},
        {"name": "dave", "key": DAVE_KEY, "allowed_accounts": ["anthropic"], "limits": {"rpm": 1}},
    ]
    cfg = base_config(tmp, providers, auth={"keys": keys}, admin={"key": ADMIN_KEY})
    try:
        gw = start_gateway(tmp, cfg, "--log-level", "debug")
        try:
            yield Env(fake, second, gw)
        finally:
            gw.stop()
    finally:
        fake.stop()
        second.stop()


def _batch_requests() -> list[Any]:
    params = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    return [
        {"custom_id": "one", "params": params},
        {"custom_id": "two", "params": params},
        {"custom_id": "fail-three", "params": params},
    ]


def test_message_batches_through_the_sdk(env: Env) -> None:
    client = env.client(account="anthropic")
    batch = client.messages.batches.create(requests=_batch_requests())
    assert batch.type == "message_batch"
    assert batch.request_counts.succeeded == 2
    assert batch.request_counts.errored == 1
    # The SDK fetches results_url as given: it must point back at the gateway.
    assert batch.results_url == f"{env.gw.url}/v1/messages/batches/{batch.id}/results"

    got = client.messages.batches.retrieve(batch.id)
    assert got.id == batch.id
    assert got.results_url == batch.results_url
    listed = client.messages.batches.list()
    assert [b.id for b in listed.data] == [batch.id]
    assert listed.data[0].results_url == batch.results_url

    results = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == ["one", "two", "fail-three"]
    assert [r.result.type for r in results] == ["succeeded", "succeeded", "errored"]

    cancelled = client.messages.batches.cancel(batch.id)
    assert cancelled.cancel_initiated_at is not None
    deleted = client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")

    # Every request reached the account with its key, never the gateway's.
    seen = [r for r in env.fake.requests if r.path.startswith("/v1/messages/batches")]
    assert len(seen) == 7
    for r in seen:
        assert r.headers["x-api-key"] == UPSTREAM_KEY
        assert ALICE_KEY not in json.dumps(r.headers)
        assert "x-llmrelay-account" not in r.headers
    assert not env.second.requests


def test_an_sdk_base_url_ending_in_v1_works_too(env: Env) -> None:
    client = anthropic.Anthropic(
        api_key=ALICE_KEY,
        base_url=f"{env.gw.url}/v1",
        max_retries=0,
        default_headers={"x-llmrelay-account": "anthropic"},
    )
    batch = client.messages.batches.create(requests=_batch_requests())
    assert batch.results_url == f"{env.gw.url}/v1/v1/messages/batches/{batch.id}/results"
    assert len(list(client.messages.batches.results(batch.id))) == 3
    assert env.fake.requests[-1].path == f"/v1/messages/batches/{batch.id}/results"


def test_batch_results_are_billed_at_the_batch_price(env: Env) -> None:
    client = env.client(account="anthropic")
    batch = client.messages.batches.create(requests=_batch_requests())
    raw = client.messages.batches.with_raw_response.retrieve(batch.id)
    assert raw.headers["request-id"]
    resp = client.messages.batches.with_raw_response.results(batch.id)
    rid = resp.headers["request-id"]
    assert len(list(resp.parse())) == 3
    row = env.row(rid)
    assert row["endpoint"] == "batch_results"
    assert row["provider"] == "anthropic"
    assert row["model"] == MODEL
    assert row["billing"] == "batch"
    assert row["tokens_known"] == 1
    # The errored request is not billed: two succeeded results.
    assert (row["input_tokens"], row["output_tokens"]) == (
        2 * BATCH_INPUT_TOKENS,
        2 * BATCH_OUTPUT_TOKENS,
    )
    price = SHIPPED_PRICES[MODEL]
    listed = (2 * BATCH_INPUT_TOKENS * price.input + 2 * BATCH_OUTPUT_TOKENS * price.output) / 1e6
    assert row["cost_usd"] == pytest.approx(listed * BATCH_DISCOUNT)
    assert BATCH_DISCOUNT == 0.5


def test_files_through_the_sdk_with_the_keys_only_account(env: Env) -> None:
    # bob's models are all on "anthropic": no header needed.
    client = env.client(BOB_KEY)
    uploaded = client.beta.files.upload(file=("notes.txt", b"hello files", "text/plain"))
    assert (uploaded.filename, uploaded.size_bytes, uploaded.mime_type) == (
        "notes.txt",
        11,
        "text/plain",
    )
    assert uploaded.id in [f.id for f in client.beta.files.list()]
    meta = client.beta.files.retrieve_metadata(uploaded.id)
    assert meta.id == uploaded.id
    download = client.beta.files.with_raw_response.download(uploaded.id)
    assert download.http_response.read() == b"hello files"
    assert download.headers["content-length"] == "11"
    assert download.headers["content-type"] == "text/plain"
    deleted = client.beta.files.delete(uploaded.id)
    assert (deleted.id, deleted.type) == (uploaded.id, "file_deleted")
    assert uploaded.id not in [f.id for f in client.beta.files.list()]
    uploads = [r for r in env.fake.requests if r.path == "/v1/files" and r.method == "POST"]
    assert uploads[-1].headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b"hello files" in uploads[-1].body


def test_a_response_without_usage_leaves_a_row_with_tokens_unknown(env: Env) -> None:
    resp = env.client(BOB_KEY).beta.files.with_raw_response.list()
    row = env.row(resp.headers["request-id"])
    assert row["status"] == 200
    assert row["endpoint"] == "proxy"
    assert row["key_name"] == "bob"
    assert row["provider"] == "anthropic"
    assert row["tokens_known"] == 0
    assert row["cost_usd"] is None
    assert row["billing"] is None
    status, _, body = raw_request(
        f"{env.gw.url}/admin/requests/{row['request_id']}",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        method="GET",
    )
    assert status == 200
    logged = json.loads(body)
    logged = logged.get("request", logged)
    assert (logged["tokens_known"], logged["billing"], logged["cost_usd"]) == (False, None, None)


def test_ambiguous_account_is_a_400_naming_the_header(env: Env) -> None:
    # alice may use every account: two speak the Anthropic wire.
    with pytest.raises(anthropic.BadRequestError) as e:
        env.client().beta.files.list()
    assert "x-llmrelay-account" in e.value.message
    assert "one of: anthropic, dead, second, slow" in e.value.message


def test_a_disallowed_account_is_a_403(env: Env) -> None:
    fake_before = len(env.fake.requests) + len(env.second.requests)
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        env.client(BOB_KEY, account="second").beta.files.list()
    assert "'second'" in e.value.message
    with pytest.raises(anthropic.PermissionDeniedError):
        env.client(CAROL_KEY, account="anthropic").messages.batches.list()
    status, _, body = raw_request(
        f"{env.gw.url}/proxy/second/v1/files", headers={"x-api-key": BOB_KEY}, method="GET"
    )
    assert status == 403
    assert json.loads(body)["error"]["type"] == "permission_error"
    assert len(env.fake.requests) + len(env.second.requests) == fake_before


def test_allowed_accounts_grant_an_account_without_models(env: Env) -> None:
    page = env.client(CAROL_KEY).beta.files.list()  # carol's only account: "second"
    assert page.data == []
    assert env.second.requests[-1].headers["x-api-key"] == SECOND_KEY


def test_a_virtual_keys_allowed_accounts(env: Env) -> None:
    spec = {"name": "vk-second", "models": ["anthropic/claude"], "allowed_accounts": ["second"]}
    status, _, body = raw_request(
        f"{env.gw.url}/admin/keys",
        json.dumps(spec).encode(),
        {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    assert status == 201, body
    created = json.loads(body)
    assert created["allowed_accounts"] == ["second"]
    key = created["key"]
    ok, _, _ = raw_request(
        f"{env.gw.url}/proxy/second/v1/files", headers={"x-api-key": key}, method="GET"
    )
    refused, _, _ = raw_request(
        f"{env.gw.url}/proxy/anthropic/v1/files", headers={"x-api-key": key}, method="GET"
    )
    # allowed_accounts replaces what the model list would grant.
    assert (ok, refused) == (200, 403)


def test_a_virtual_key_naming_unknown_accounts_is_a_400(env: Env) -> None:
    """(issue 13) As the config file's keys: allowed_accounts must name configured accounts,
    on create and on edit; nothing is stored."""
    admin = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    spec = {"name": "vk-unknown", "allowed_accounts": ["nope", "../x"]}
    status, _, body = raw_request(f"{env.gw.url}/admin/keys", json.dumps(spec).encode(), admin)
    assert status == 400, body
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("allowed_accounts: 'nope', '../x' not among")
    status, _, body = raw_request(f"{env.gw.url}/admin/keys", method="GET", headers=admin)
    assert "vk-unknown" not in body.decode()
    spec = {"name": "vk-edit-accounts", "allowed_accounts": ["second"]}
    status, _, body = raw_request(f"{env.gw.url}/admin/keys", json.dumps(spec).encode(), admin)
    assert status == 201, body
    key_id = json.loads(body)["id"]
    edit = json.dumps({"allowed_accounts": ["second", "ghost"]}).encode()
    status, _, body = raw_request(f"{env.gw.url}/admin/keys/{key_id}", edit, admin, "PATCH")
    assert status == 400 and b"'ghost' not among the provider accounts" in body
    status, _, body = raw_request(f"{env.gw.url}/admin/keys/{key_id}", method="GET", headers=admin)
    assert json.loads(body)["allowed_accounts"] == ["second"]


def test_proxy_route_forwards_messages_and_records_usage(env: Env) -> None:
    body = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "ping"}]}
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    status, headers, raw = raw_request(
        f"{env.gw.url}/proxy/anthropic/v1/messages?beta=true",
        json.dumps(body).encode(),
        {
            "x-api-key": ALICE_KEY,
            "content-type": "application/json",
            "anthropic-version": "x",
            "traceparent": trace,
        },
    )
    assert status == 200, raw
    answer = json.loads(raw)
    assert answer["content"][0]["text"] == "echo: ping"
    sent = env.fake.requests[-1]
    assert (sent.path, sent.query) == ("/v1/messages", "beta=true")
    assert sent.body == json.dumps(body).encode()  # byte for byte
    assert sent.headers["anthropic-version"] == "x"
    row = env.row(headers["request-id"])
    assert row["tokens_known"] == 1
    assert row["input_tokens"] == answer["usage"]["input_tokens"]
    assert row["output_tokens"] == answer["usage"]["output_tokens"]
    assert row["model"] == MODEL
    assert row["cost_usd"] > 0
    assert row["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert sent.headers["traceparent"] == trace  # tracing is off: the client's goes on


def test_proxy_route_streams_and_reads_stream_usage(env: Env) -> None:
    client = anthropic.Anthropic(
        api_key=ALICE_KEY, base_url=f"{env.gw.url}/proxy/anthropic", max_retries=0
    )
    with client.messages.stream(
        model=MODEL, max_tokens=32, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        rid = stream.response.headers["request-id"]
    assert text == "echo: stream me"
    row = env.row(rid)
    assert row["stream"] == 1
    assert row["tokens_known"] == 1
    assert row["output_tokens"] == final.usage.output_tokens


def test_results_url_follows_the_proxy_in_front(env: Env) -> None:
    status, headers, raw = raw_request(
        f"{env.gw.url}/anthropic/v1/messages/batches",
        json.dumps({"requests": _batch_requests()}).encode(),
        {
            "x-api-key": ALICE_KEY,
            "anthropic-version": "2023-06-01",
            "x-llmrelay-account": "anthropic",
            "content-type": "application/json",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "llm.example.com",
        },
    )
    assert status == 200, raw
    batch = json.loads(raw)
    assert batch["results_url"] == (
        f"https://llm.example.com/anthropic/v1/messages/batches/{batch['id']}/results"
    )
    assert headers["x-llmrelay-upstream-request-id"].startswith("req_fake")


def test_a_client_that_leaves_mid_stream_is_a_499_row(env: Env) -> None:
    events = [("message_start", {"type": "message_start", "message": {"model": MODEL,
               "usage": {"input_tokens": 7, "output_tokens": 1}}})]  # fmt: skip
    events += [("ping", {"type": "ping"})] * 50
    env.fake.enqueue(sse_reply(events, delay_s=0.2))
    body = json.dumps({"model": MODEL, "max_tokens": 8, "messages": [], "stream": True})
    host, port = env.gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            (
                "POST /proxy/anthropic/v1/messages HTTP/1.1\r\nHost: x\r\n"
                f"x-api-key: {ALICE_KEY}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n{body}"
            ).encode()
        )
        head = b""
        while b"message_start" not in head:
            head += s.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    rid = head.split(b"request-id: ")[1].split(b"\r\n")[0].decode()
    assert env.fake.wait_for_disconnect(10)  # the provider connection was closed too
    row = env.row(rid)
    assert (row["status"], row["error_type"]) == (499, "client_disconnected")
    assert row["input_tokens"] == 7  # what was read before the client left


def _post_messages(env: Env, account: str, stream: bool = False) -> Any:
    body = {"model": MODEL, "max_tokens": 8, "messages": [], "stream": stream}
    return raw_request(
        f"{env.gw.url}/proxy/{account}/v1/messages",
        json.dumps(body).encode(),
        {"x-api-key": ALICE_KEY, "content-type": "application/json"},
    )


def test_an_unreachable_account_is_a_502(env: Env) -> None:
    status, headers, body = _post_messages(env, "dead")
    assert status == 502
    assert "'dead' could not be reached" in json.loads(body)["error"]["message"]
    row = env.row(headers["request-id"])
    assert (row["status"], row["provider"]) == (502, "dead")


def test_the_accounts_total_s_bounds_the_call(env: Env) -> None:
    env.fake.enqueue(hang_reply())
    status, headers, body = _post_messages(env, "slow")
    assert status == 504
    assert "timeouts.total_s" in json.loads(body)["error"]["message"]
    assert env.row(headers["request-id"])["error_type"] == "timeout_error"


def test_a_stream_past_total_s_is_cut_and_the_row_says_so(env: Env) -> None:
    start = {"type": "message_start", "message": {"model": MODEL, "usage": {"input_tokens": 3}}}
    env.fake.enqueue(sse_reply([("message_start", start)], hang_after=True))
    status, headers, raw = _post_messages_stream_cut(env)
    assert status == 200
    assert b"message_start" in raw
    row = env.row(headers["request-id"])
    assert (row["status"], row["error_type"]) == (200, "timeout_error")
    assert "timeouts.total_s" in row["error_message"]
    assert row["input_tokens"] == 3


def test_x_llmrelay_timeout_ms_bounds_a_passthrough_call(env: Env) -> None:
    """(issue 13) The header bounds /proxy as it bounds /v1/messages; the 504 names it."""
    env.fake.enqueue(hang_reply())
    body = json.dumps({"model": MODEL, "max_tokens": 8, "messages": []}).encode()
    status, headers, raw = raw_request(
        f"{env.gw.url}/proxy/anthropic/v1/messages",
        body,
        {
            "x-api-key": ALICE_KEY,
            "content-type": "application/json",
            "x-llmrelay-timeout-ms": "300",
        },
    )
    assert status == 504, raw
    message = json.loads(raw)["error"]["message"]
    assert "within 0.3s (x-llmrelay-timeout-ms)" in message
    assert env.row(headers["request-id"])["error_type"] == "timeout_error"


def test_a_stream_past_timeout_ms_is_charged_what_it_delivered(env: Env) -> None:
    env.fake.enqueue(deltas_reply(["tok "] * 3))  # then held open
    status, headers, raw = _post_messages_stream_cut(
        env, "anthropic", {"x-llmrelay-timeout-ms": "500"}
    )
    assert status == 200 and raw.count(b"event: content_block_delta") == 3
    row = env.row(headers["request-id"])
    assert (row["status"], row["error_type"], row["output_tokens"]) == (200, "timeout_error", 3)
    assert "(x-llmrelay-timeout-ms); stream cut after 3 content deltas" in row["error_message"]


def test_an_unparsable_timeout_ms_is_a_400_and_reaches_no_provider(env: Env) -> None:
    before = len(env.fake.requests)
    status, _, raw = raw_request(
        f"{env.gw.url}/proxy/anthropic/v1/messages",
        b"{}",
        {"x-api-key": ALICE_KEY, "x-llmrelay-timeout-ms": "soon"},
    )
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("x-llmrelay-timeout-ms: expected")
    assert len(env.fake.requests) == before


def _post_messages_stream_cut(
    env: Env, account: str = "slow", extra: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    import http.client

    body = json.dumps({"model": MODEL, "max_tokens": 8, "messages": [], "stream": True})
    host, port = env.gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(
        "POST",
        f"/proxy/{account}/v1/messages",
        body,
        {"x-api-key": ALICE_KEY, "content-type": "application/json", **(extra or {})},
    )
    resp = conn.getresponse()
    out = b""
    try:
        while chunk := resp.read1(65536):
            out += chunk
    except http.client.IncompleteRead as e:  # the gateway cut the chunked body
        out += e.partial
    finally:
        resp.close()
        conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, out


def test_provider_errors_pass_through_unchanged(env: Env) -> None:
    with pytest.raises(anthropic.NotFoundError) as e:
        env.client(account="anthropic").messages.batches.retrieve("msgbatch_nope")
    assert e.value.message.startswith("message batch not found") or "not found" in str(e.value)


@pytest.mark.parametrize(
    "target",
    [
        "/proxy/anthropic/../second/v1/files",
        "/proxy/anthropic/v1/%2e%2e/%2E%2E/v1/files",
        "/proxy/anthropic/v1%2ffiles",
        "/proxy/anthropic/v1%2Ffiles",
        "/proxy/anthropic//v1/files",
        "/proxy/anthropic/v1//files",
        "/proxy/anthropic/v1/files%5c..",
        "/proxy/anthropic/v1/files/%252e%252e",
        "/proxy/../anthropic/v1/files",
        "/v1/files/../../proxy/second/v1/files",
        "/v1/files/%2e%2e/messages",
    ],
)
def test_escape_attempts_are_400_and_reach_no_provider(env: Env, target: str) -> None:
    before = len(env.fake.requests) + len(env.second.requests)
    reply = _raw_http(
        env.gw.url,
        f"GET {target} HTTP/1.1\r\nHost: x\r\nx-api-key: {ALICE_KEY}\r\n"
        "anthropic-version: 2023-06-01\r\nx-llmrelay-account: anthropic\r\n"
        "Connection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"passthrough path refused" in reply
    assert len(env.fake.requests) + len(env.second.requests) == before


def test_an_absolute_url_target_is_a_400(env: Env) -> None:
    before = len(env.fake.requests) + len(env.second.requests)
    reply = _raw_http(
        env.gw.url,
        "GET http://evil.example/proxy/anthropic/v1/files HTTP/1.1\r\nHost: evil.example\r\n"
        f"x-api-key: {ALICE_KEY}\r\nConnection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"absolute URL" in reply
    assert len(env.fake.requests) + len(env.second.requests) == before


def test_a_host_header_never_goes_upstream(env: Env) -> None:
    status, _, _ = raw_request(
        f"{env.gw.url}/proxy/anthropic/v1/files",
        headers={"x-api-key": ALICE_KEY, "Host": "evil.example", "X-Forwarded-Host": "evil"},
        method="GET",
    )
    assert status == 200
    sent = env.fake.requests[-1]
    assert sent.headers["host"] == env.fake.url.removeprefix("http://")
    assert "x-forwarded-host" not in sent.headers


def test_no_key_is_a_401_and_an_unknown_account_a_404(env: Env) -> None:
    status, _, body = raw_request(f"{env.gw.url}/proxy/anthropic/v1/files", method="GET")
    assert status == 401
    assert json.loads(body)["type"] == "error"
    status, _, body = raw_request(
        f"{env.gw.url}/proxy/nowhere/v1/files", headers={"x-api-key": ALICE_KEY}, method="GET"
    )
    assert status == 404
    assert "nowhere" in json.loads(body)["error"]["message"]
    named = env.client(account="made-up-" + "x" * 300)
    with pytest.raises(anthropic.NotFoundError) as e:
        named.beta.files.list()
    assert "characters)" in e.value.message  # the made-up name is echoed cut
    row = env.row(e.value.response.headers["request-id"])
    assert (row["status"], row["provider"]) == (404, "")  # and never recorded
    status, _, body = raw_request(
        f"{env.gw.url}/proxy/local/v1/files", headers={"x-api-key": ALICE_KEY}, method="GET"
    )
    assert status == 404
    assert "no native API" in json.loads(body)["error"]["message"]


def test_request_limits_apply(env: Env) -> None:
    url = f"{env.gw.url}/proxy/anthropic/v1/files"
    first, _, _ = raw_request(url, headers={"x-api-key": DAVE_KEY}, method="GET")
    second, headers, body = raw_request(url, headers={"x-api-key": DAVE_KEY}, method="GET")
    assert (first, second) == (200, 429)
    assert json.loads(body)["error"]["type"] == "rate_limit_error"
    assert "retry-after" in headers


def test_a_body_over_the_cap_is_a_413(tmp_path: Path) -> None:
    with FakeAnthropic() as fake:
        providers = {
            "anthropic": {
                "type": "anthropic",
                "base_url": fake.url,
                "api_key": UPSTREAM_KEY,
                "models": {"claude": MODEL},
            }
        }
        cfg = base_config(tmp_path, providers, server={"max_request_body_mb": 0.001})
        gw = start_gateway(tmp_path, cfg)
        try:
            status, _, body = raw_request(
                f"{gw.url}/v1/files",
                b"x" * 4096,
                {"x-api-key": ALICE_KEY, "anthropic-version": "2023-06-01"},
            )
        finally:
            gw.stop()
        assert status == 413
        assert "max_request_body_mb" in json.loads(body)["error"]["message"]
        assert not fake.requests


def _raw_http(url: str, request: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request.encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out
