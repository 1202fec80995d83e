"""``llmrelay logs``: the request log read from the database the config names, one line per
call, filtered; ``--follow`` prints new calls as they are written; ``logs show`` prints one
call whole, with its attempts and bodies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay.cli import main
from llmrelay.obs.request_log import detail_json
from llmrelay.routing.executor import AttemptRecord
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import RequestBodies, UsageRecord

CONFIG = """\
auth:
  keys:
    - name: local
      key: sk-test-0123456789abcdef
providers:
  mock:
    type: mock
    models:
      echo: echo
usage:
  path: usage.db
"""
T0 = 1_796_000_000.0  # 2026-11-30T00:53:20Z


def rec(i: int, **kw: object) -> UsageRecord:
    base: dict[str, object] = {
        "ts": T0 + i,
        "request_id": f"req_{i:024x}",
        "key_name": "alice",
        "model": "mock/echo",
        "provider": "mock",
        "provider_model": "echo",
        "endpoint": "messages",
        "stream": False,
        "status": 200,
        "input_tokens": 12,
        "output_tokens": 7,
        "latency_s": 0.0421,
        "cost_usd": 0.000123,
    }
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "llmrelay.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def store(config: Path) -> Iterator[SQLiteUsageStore]:
    s = SQLiteUsageStore(config.parent / "usage.db")
    yield s
    s.close()


def logs(config: Path, capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> str:
    assert main(["logs", "--config", str(config), *args]) == code
    return capsys.readouterr().out


def sample(store: SQLiteUsageStore) -> None:
    failed = rec(
        2,
        key_name="bob",
        model="fallback",
        status=529,
        attempts=2,
        error_type="overloaded_error",
        error_message="Overloaded",
        cost_usd=None,
        input_tokens=0,
        output_tokens=0,
    )
    store.write([rec(1), failed, rec(3, model="claude", provider="anthropic",
                                     provider_model="claude-sonnet-4-5")])  # fmt: skip


def test_without_a_database_it_says_so(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs(config, capsys).startswith("no requests recorded yet")


def test_one_line_per_call_oldest_first(
    config: Path, store: SQLiteUsageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    sample(store)
    lines = logs(config, capsys).splitlines()
    assert lines == [
        f"2026-11-30 00:53:21.000  {rec(1).request_id}  alice  mock/echo → mock/echo  200  42ms"
        "  12/7 tok  $0.000123",
        f"2026-11-30 00:53:22.000  {rec(2).request_id}  bob  fallback → mock/echo  529  42ms"
        "  0/0 tok  -  2 attempts  overloaded_error: Overloaded",
        f"2026-11-30 00:53:23.000  {rec(3).request_id}  alice  claude → anthropic/claude-sonnet-4-5"
        "  200  42ms  12/7 tok  $0.000123",
    ]


def test_filters_and_limit(
    config: Path, store: SQLiteUsageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    sample(store)
    ids = lambda out: [line.split()[2] for line in out.splitlines()]  # noqa: E731
    assert ids(logs(config, capsys, "--key", "bob")) == [rec(2).request_id]
    assert ids(logs(config, capsys, "--status", "5xx")) == [rec(2).request_id]
    assert ids(logs(config, capsys, "--status", "200", "--model", "claude")) == [rec(3).request_id]
    assert ids(logs(config, capsys, "--limit", "2")) == [rec(2).request_id, rec(3).request_id]
    assert ids(logs(config, capsys, "--since", "2026-12-01")) == []
    assert ids(logs(config, capsys, "--since", str(T0 + 2))) == [
        rec(2).request_id,
        rec(3).request_id,
    ]


def test_json_lines(
    config: Path, store: SQLiteUsageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    sample(store)
    rows = [json.loads(line) for line in logs(config, capsys, "--json").splitlines()]
    assert [r["request_id"] for r in rows] == [rec(i).request_id for i in (1, 2, 3)]
    assert rows[1]["error_message"] == "Overloaded" and rows[1]["latency_ms"] == 42.1


def test_a_bad_status_is_refused_by_the_parser(config: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["logs", "--config", str(config), "--status", "teapot"])
    assert exit_.value.code == 2


def test_show_prints_the_record_attempts_and_bodies(
    config: Path, store: SQLiteUsageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    row = rec(
        5,
        request_id="req_feedface00000000000000",
        model="fallback",
        routed_model="fallback",
        attempts=2,
        attempt_log=[
            AttemptRecord("busy/echo", 529, "overloaded_error", 0.0123, "Overloaded"),
            AttemptRecord("mock/echo", 200, None, 0.25),
        ],
        user_agent="Anthropic/Python 0.70.0",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        surface="anthropic",
    )
    row.bodies = RequestBodies('{"model":"fallback"}', '{"type":"message"}', False, True)
    store.write([row, rec(6)])
    out = logs(config, capsys, "show", row.request_id)
    fields = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines())
    assert fields["request_id"] == row.request_id
    assert fields["time"] == "2026-11-30T00:53:25.000Z"
    assert fields["user_agent"] == "Anthropic/Python 0.70.0"
    assert fields["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (fields["routed_model"], fields["error_message"]) == ("fallback", "-")
    assert "  1. busy/echo  529  12.3ms  overloaded_error: Overloaded" in out
    assert "  2. mock/echo  200  250.0ms" in out
    assert 'request body:\n{\n  "model": "fallback"\n}' in out
    assert 'response body (truncated):\n{\n  "type": "message"\n}' in out
    # A unique prefix is enough; the other call has no bodies.
    assert logs(config, capsys, "show", "req_feed") == out
    assert "bodies: none captured" in logs(config, capsys, "show", rec(6).request_id)


def test_show_prints_a_single_attempt_as_the_admin_api_does(
    config: Path, store: SQLiteUsageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    # A single attempt is stored as NULL attempt_log; the row itself describes it.
    one = rec(7, routed_model="mock/echo", upstream_ms=40.0)
    store.write([one, rec(8, provider="", routed_model=None, status=401)])
    found = store.request(one.request_id)
    assert found is not None and found[0].record.attempt_log is None
    assert detail_json(*found)["attempt_log"] == [
        {"target": "mock/echo", "status": 200, "error_type": None, "latency_s": 0.04}
    ]
    out = logs(config, capsys, "show", one.request_id)
    assert "attempts:\n  1. mock/echo  200  40.0ms\n" in out
    assert "attempts: none recorded" in logs(config, capsys, "show", rec(8).request_id)


def test_show_of_an_unknown_or_ambiguous_id_fails(
    config: Path, store: SQLiteUsageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    sample(store)
    assert main(["logs", "show", "req_nothing", "--config", str(config)]) == 1
    assert "no request 'req_nothing'" in capsys.readouterr().err
    assert main(["logs", "show", "req_0", "--config", str(config)]) == 1
    assert "several request ids" in capsys.readouterr().err


def test_follow_prints_new_calls_until_ctrl_c(config: Path, store: SQLiteUsageStore) -> None:
    sample(store)
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "llmrelay", "logs", "--config", str(config), "--follow",
         "--key", "alice"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:  # fmt: skip

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            wait_for(lambda: len(lines) == 2)
            store.write([rec(7, key_name="bob"), rec(8)])
            wait_for(lambda: len(lines) == 3)
            store.write([rec(9)])
            wait_for(lambda: len(lines) == 4)
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(10)
            reader.join(5)
        assert proc.stderr is not None
        assert code == 0, proc.stderr.read()
    assert [line.split()[2] for line in lines] == [rec(i).request_id for i in (1, 3, 8, 9)]


def test_follow_waits_for_the_database_to_appear(config: Path, tmp_path: Path) -> None:
    db = config.parent / "usage.db"
    assert not db.exists()
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "llmrelay", "logs", "--config", str(config), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            wait_for(lambda: len(lines) == 1)
            assert lines[0].startswith("no requests recorded yet")
            assert proc.poll() is None  # still following
            store = SQLiteUsageStore(db)
            store.write([rec(1)])
            wait_for(lambda: len(lines) == 2)
            store.close()
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(10)
            reader.join(5)
        assert proc.stderr is not None
        assert code == 0, proc.stderr.read()
    assert lines[1].split()[2] == rec(1).request_id


def wait_for(done: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_closed_pipe_ends_the_cli_quietly(tmp_path: Path) -> None:
    # `llmrelay check-config FILE | head -1`: the reader leaves early; no traceback.
    import subprocess
    import sys

    config = tmp_path / "c.yaml"
    config.write_text(
        "auth: {keys: [{name: a, key: sk-test-aaaaaaaa}]}\n"
        "providers: {local: {type: mock, models: {echo: echo}}}\n"
    )
    proc = subprocess.run(
        f"{sys.executable} -m llmrelay check-config {config} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.endswith(": ok\n")
    assert "Traceback" not in proc.stderr
