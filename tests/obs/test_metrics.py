"""``/metrics`` counts every call once: after a known mix of calls through both SDKs (JSON
and streams, two keys, a rate-limit refusal, a fallback from a provider 529, a client that
leaves mid-stream, a wrong key), the series' deltas equal the calls made and the usage
rows' token sums exactly."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import sqlite3
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ALICE_KEY, BOB_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic, fixture_reply

HELLO = [{"role": "user", "content": "Hello there"}]
METRICS_KEY = "metrics-scrape-key-123"


Series = dict[tuple[tuple[str, str], ...], float]


@dataclass
class Env:
    fake: FakeAnthropic
    gw: GatewayProcess

    def scrape(
        self, key: str | None = METRICS_KEY
    ) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        req = urllib.request.Request(self.gw.url + "/metrics")
        if key is not None:
            req.add_header("authorization", f"Bearer {key}")
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        out: dict[str, Series] = defaultdict(dict)
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[s.name][tuple(sorted(s.labels.items()))] = s.value
        return out

    def rows(self) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.gw.usage_db)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM usage")]
        finally:
            db.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("metrics")
    with FakeAnthropic() as fake:
        providers = {
            "anthropic": {
                "type": "anthropic",
                "base_url": fake.url,
                "api_key": "sk-ant-upstream",
                "models": {"claude": "claude-sonnet-4-6"},
            },
            "local": {"type": "mock", "models": {"echo": "echo"}},
            "failing": {"type": "mock", "models": {"echo": "echo"}, "error_status": 529},
        }
        config = base_config(
            tmp,
            providers,
            models={
                "echo-fallback": {
                    "targets": [
                        {"model": "failing/echo", "priority": 1},
                        {"model": "local/echo", "priority": 2},
                    ]
                }
            },
            observability={"metrics": {"key": METRICS_KEY}},
        )
        config["auth"]["keys"][1]["limits"] = {"rpm": 2}
        config["auth"]["keys"][1]["team"] = "platform"
        gw = start_gateway(tmp, config)
        try:
            yield Env(fake, gw)
        finally:
            gw.stop()


def _value(series: Series, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for k, v in series.items() if want <= set(k))


def leave_after_first_event(env: Env) -> None:
    host, port = env.gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = {"model": "anthropic/claude", "max_tokens": 20, "messages": HELLO, "stream": True}
    conn.request(
        "POST",
        "/v1/messages",
        body=json.dumps(body),
        headers={"x-api-key": ALICE_KEY, "content-type": "application/json"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    resp.read1(64)
    resp.close()
    conn.close()


def test_a_scrape_needs_the_metrics_key(env: Env) -> None:
    for key in (None, "wrong-key-wrong-key"):
        with pytest.raises(urllib.error.HTTPError) as e:
            env.scrape(key=key)
        assert e.value.code == 401
        e.value.close()


def test_a_gzip_scrape_says_the_same_with_the_process_series(env: Env) -> None:
    """Prometheus asks for gzip; the body is then gzipped and parses to the same families,
    the standard process_* and python_* series included."""
    req = urllib.request.Request(env.gw.url + "/metrics")
    req.add_header("authorization", f"Bearer {METRICS_KEY}")
    req.add_header("accept-encoding", "gzip")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["content-type"].startswith("text/plain; version=")
        text = gzip.decompress(r.read()).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"llmrelay_requests", "llmrelay_in_flight_requests"} <= names
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_info"} <= names
    plain = env.scrape()
    assert plain["process_resident_memory_bytes"][()] > 10 * 2**20
    req = urllib.request.Request(env.gw.url + "/metrics")
    req.add_header("authorization", f"Bearer {METRICS_KEY}")
    req.add_header("accept-encoding", "gzip;q=0, identity")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert "content-encoding" not in r.headers
        assert b"llmrelay_in_flight_requests" in r.read()


def test_series_equal_the_calls_and_the_usage_rows(env: Env) -> None:
    before = env.scrape()
    with (
        anthropic.Anthropic(api_key=ALICE_KEY, base_url=env.gw.url, max_retries=0) as a,
        openai.OpenAI(api_key=BOB_KEY, base_url=env.gw.url + "/v1", max_retries=0) as o,
        anthropic.Anthropic(api_key="sk-wrong-key-123456", base_url=env.gw.url) as wrong,
    ):
        a.messages.create(model="local/echo", max_tokens=20, messages=HELLO)
        with a.messages.stream(model="local/echo", max_tokens=20, messages=HELLO) as s:
            s.get_final_message()
        o.chat.completions.create(model="local/echo", messages=HELLO)  # type: ignore[arg-type]
        o.chat.completions.create(model="local/echo", messages=HELLO, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError):
            o.chat.completions.create(model="local/echo", messages=HELLO)  # type: ignore[arg-type]
        a.messages.create(model="echo-fallback", max_tokens=20, messages=HELLO)
        # A client that leaves after the first event of a slow stream.
        env.fake.enqueue(fixture_reply("text_stream.sse", delay_s=0.3))
        leave_after_first_event(env)
        with pytest.raises(anthropic.AuthenticationError):
            wrong.models.list()
        with pytest.raises(anthropic.AuthenticationError):
            wrong.with_options(max_retries=0).messages.create(
                model="local/echo", max_tokens=5, messages=HELLO
            )

    # Every authenticated call has its row (7), and the scrape has seen every call end.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = env.rows()
        after = env.scrape()
        if len(rows) >= 7 and _value(after["llmrelay_in_flight_requests"]) == 0:
            break
        time.sleep(0.1)
    assert len(rows) == 7
    requests = {
        k: v - before["llmrelay_requests_total"].get(k, 0)
        for k, v in after["llmrelay_requests_total"].items()
    }
    assert _value(requests) == 8  # 7 rows + the 401 call (a model list is not a call)
    assert _value(requests, key="alice", status="200") == 3
    assert _value(requests, key="bob", team="platform", status="200") == 2
    assert _value(requests, key="bob", status="429") == 1
    assert _value(requests, status="499", model="anthropic/claude", provider="anthropic") == 1
    assert _value(requests, status="401", key="") == 1
    assert _value(requests, model="echo-fallback", provider="local") == 1

    for kind, column in (
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cache_read", "cache_read_input_tokens"),
        ("cache_creation", "cache_creation_input_tokens"),
    ):
        delta = _value(after["llmrelay_tokens_total"], type=kind) - _value(
            before.get("llmrelay_tokens_total", {}), type=kind
        )
        assert delta == sum(r[column] for r in rows), kind

    attempts = after["llmrelay_upstream_attempts_total"]
    assert _value(attempts, provider="failing", outcome="fallback") == 1
    assert _value(attempts, provider="local", outcome="success") >= 5
    assert _value(after["llmrelay_rate_limited_total"], scope="key") == 1
    assert (
        _value(after["llmrelay_request_duration_seconds_count"])
        - _value(before.get("llmrelay_request_duration_seconds_count", {}))
        == 8
    )
    assert _value(after["llmrelay_time_to_first_token_seconds_count"]) >= 2
    assert _value(after["llmrelay_usage_rows_written_total"]) >= 7
    assert "llmrelay_counter_store_fallback" in after


def test_timing_headers_on_every_response(env: Env) -> None:
    with anthropic.Anthropic(api_key=ALICE_KEY, base_url=env.gw.url, max_retries=0) as a:
        timing_headers(a)


def test_a_slow_upload_is_the_clients_time_not_the_gateways(env: Env) -> None:
    """Headers first, the body 1.5 s later: the overhead header leaves that wait out."""
    host, port = env.gw.url.removeprefix("http://").split(":")
    body = json.dumps({"model": "local/echo", "max_tokens": 5, "messages": HELLO}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"x-api-key: {ALICE_KEY}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(1.5)
        sock.sendall(body[10:])
        head = sock.recv(65536).split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 200")
    headers = dict(line.lower().split(": ", 1) for line in head.split("\r\n")[1:])
    # the 1.5 s went to the upload; what is left is the gateway's own (well under a second)
    assert float(headers["x-llmrelay-overhead-ms"]) < 750
    assert headers["server-timing"].startswith("gateway;dur=")


def timing_headers(a: anthropic.Anthropic) -> None:
    raw = a.messages.with_raw_response.create(model="local/echo", max_tokens=5, messages=HELLO)
    assert float(raw.headers["x-llmrelay-overhead-ms"]) >= 0
    timing = raw.headers["server-timing"]
    assert timing.startswith("gateway;dur=") and ", upstream;dur=" in timing
    with a.messages.with_streaming_response.create(
        model="local/echo", max_tokens=5, messages=HELLO, stream=True
    ) as s:
        assert float(s.headers["x-llmrelay-overhead-ms"]) >= 0
    with pytest.raises(anthropic.NotFoundError) as e:
        a.messages.create(model="nope/nope", max_tokens=5, messages=HELLO)
    assert float(e.value.response.headers["x-llmrelay-overhead-ms"]) >= 0
