"""Usage rows: one per call, with the right token counts, written off the request path."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from llmrelay.obs.usage import UsageRecorder
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import UsageRecord
from tests.conftest import BOB_KEY
from tests.fakes.anthropic_upstream import fixture_reply
from tests.gateway_env import PROVIDER_MODEL, Env, make_env

MODEL = "anthropic/claude-3-5"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path)


def test_rows_for_json_stream_error_and_count_tokens(env: Env) -> None:
    env.fake.enqueue(
        fixture_reply("message.json"),
        fixture_reply("text_stream.sse"),
        fixture_reply("error_429.json"),
    )
    with env.client() as client:
        msg = client.messages.with_raw_response.create(model=MODEL, max_tokens=5, messages=HELLO)
        with client.messages.stream(model=MODEL, max_tokens=5, messages=HELLO) as s:
            s.until_done()
            stream_rid = s.response.headers["request-id"]
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    with env.client(key=BOB_KEY) as client:
        client.messages.count_tokens(model="local/echo", messages=HELLO)

    rows = env.usage_rows(4)
    assert len(rows) == 4
    json_row, stream_row, error_row, count_row = rows
    assert json_row["request_id"] == msg.headers["request-id"]
    assert json_row["key_name"] == "alice"
    assert json_row["model"] == MODEL
    assert json_row["provider"] == "anthropic"
    assert json_row["provider_model"] == PROVIDER_MODEL
    assert json_row["status"] == 200 and json_row["stream"] == 0
    assert (json_row["input_tokens"], json_row["output_tokens"]) == (25, 15)
    assert (json_row["cache_creation_input_tokens"], json_row["cache_read_input_tokens"]) == (7, 11)
    assert json_row["upstream_request_id"]
    assert msg.headers["x-llmrelay-upstream-request-id"] == json_row["upstream_request_id"]
    assert json_row["latency_s"] > 0 and json_row["ttft_s"] is None

    assert stream_row["request_id"] == stream_rid
    assert stream_row["stream"] == 1 and stream_row["status"] == 200
    # message_start gave input 25 / output 1; the cumulative message_delta says output 15.
    assert (stream_row["input_tokens"], stream_row["output_tokens"]) == (25, 15)
    assert (stream_row["cache_creation_input_tokens"], stream_row["cache_read_input_tokens"]) == (
        7,
        11,
    )
    assert stream_row["ttft_s"] is not None and stream_row["ttft_s"] <= stream_row["latency_s"]

    assert error_row["status"] == 429
    assert error_row["error_type"] == "rate_limit_error"
    assert error_row["output_tokens"] == 0

    assert count_row["key_name"] == "bob"
    assert count_row["endpoint"] == "count_tokens"
    assert count_row["provider"] == "local"


def test_usage_cli_summarises_per_key_and_model(env: Env) -> None:
    env.fake.enqueue(fixture_reply("message.json"), fixture_reply("message.json"))
    with env.client() as client:
        client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
        client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
        client.messages.create(model="local/echo", max_tokens=5, messages=HELLO)
    env.usage_rows(3)
    out = subprocess.run(
        [sys.executable, "-m", "llmrelay", "usage", "--config", str(env.gw.config_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["key", "model", "requests", "errors"]
    row = next(line.split() for line in lines if MODEL in line)
    assert row[:6] == ["alice", MODEL, "2", "0", "50", "30"]
    assert any("local/echo" in line for line in lines)


class FailingStore:
    """A store whose disk is full for the first ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.rows: list[UsageRecord] = []

    def write(self, records: list[UsageRecord]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        self.rows.extend(records)

    def summary(self, group_by: list[str], since: float | None = None) -> list[object]:
        return []

    def close(self) -> None:
        pass


def row(i: int) -> UsageRecord:
    return UsageRecord(
        ts=0.0,
        request_id=f"req_{i}",
        key_name="k",
        model="m",
        provider="p",
        provider_model="pm",
        endpoint="messages",
        stream=False,
        status=200,
    )


def test_full_queue_drops_and_counts_without_blocking() -> None:
    async def main() -> tuple[int, int]:
        store = FailingStore(0)
        rec = UsageRecorder(store, queue_size=10, batch_size=100, flush_interval_s=60)  # type: ignore[arg-type]
        rec.start()
        for i in range(25):
            rec.record(row(i))
        await rec.aclose()
        return len(store.rows), rec.dropped

    written, dropped = asyncio.run(main())
    assert (written, dropped) == (10, 15)


def test_failed_write_is_retried_and_nothing_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmrelay.obs.usage as usage_mod

    monkeypatch.setattr(usage_mod, "_FIRST_BACKOFF_S", 0.01)

    async def main() -> tuple[list[str], int]:
        store = FailingStore(2)
        rec = UsageRecorder(store, queue_size=100, batch_size=5, flush_interval_s=0.01)  # type: ignore[arg-type]
        rec.start()
        for i in range(12):
            rec.record(row(i))
        for _ in range(200):
            if len(store.rows) == 12:
                break
            await asyncio.sleep(0.01)
        await rec.aclose()
        return [r.request_id for r in store.rows], rec.dropped

    ids, dropped = asyncio.run(main())
    assert ids == [f"req_{i}" for i in range(12)]
    assert dropped == 0


def test_sqlite_store_round_trip(tmp_path: Path) -> None:
    store = SQLiteUsageStore(tmp_path / "sub" / "u.db")
    store.write([row(1), row(2)])
    assert [r.request_id for r in store.rows()] == ["req_1", "req_2"]
    assert store.rows()[0].stream is False
    (summary,) = store.summary(["key", "model"])
    assert (summary.group, summary.requests, summary.errors) == (("k", "m"), 2, 0)
    store.close()
