"""``llmrelay serve --workers N``: real worker processes on one port, driven with the SDKs.

Limits and budgets hold across workers exactly (embedded counters in the supervisor, and
Redis), /metrics adds up every worker, a worker killed with SIGKILL mid-stream is replaced
without losing the other workers' usage rows, and a supervisor whose workers cannot start
exits non-zero.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY, GatewayProcess, base_config, free_port, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.governance.cluster import REDIS_URL, redis_prefix

MOCK = {"local": {"type": "mock", "models": {"echo": "echo"}}}


def children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    out: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry.name))
    return out


def metrics_text(gw: GatewayProcess) -> str:
    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as r:
        text: str = r.read().decode()
        return text


def wait_for_workers(gw: GatewayProcess, n: int, timeout: float = 30.0) -> None:
    """Until a scrape holds all ``n`` workers' figures (every worker is listening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(rf"^llmrelay_workers_scraped {n}\.0$", metrics_text(gw), re.M):
            return
        time.sleep(0.1)
    raise AssertionError(f"not all {n} workers came up:\n{gw.log()}")


def requests_total(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("llmrelay_requests_total{")
    )


def usage_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])
    finally:
        conn.close()


def wait_usage(db: Path, n: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        try:
            count = usage_count(db)
        except sqlite3.OperationalError:
            count = 0
        if count >= n:
            return count
        time.sleep(0.1)
    return count


@pytest.fixture
def workers3(tmp_path: Path) -> Iterator[GatewayProcess]:
    cfg = base_config(tmp_path, MOCK)
    cfg["auth"]["keys"][0]["limits"] = {"rpm": 60}
    gw = start_gateway(tmp_path, cfg, "--workers", "3")
    try:
        wait_for_workers(gw, 3)
        yield gw
    finally:
        gw.stop()


def _call(client: anthropic.Anthropic) -> int:
    # A fresh connection per call, so the kernel spreads the calls over the workers.
    try:
        client.messages.create(
            model="local/echo",
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"connection": "close"},
        )
    except anthropic.RateLimitError:
        return 429
    return 200


def _storm(url: str, key: str, calls: int) -> list[int]:
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=60)
    barrier = threading.Barrier(calls)

    def one(_: int) -> int:
        barrier.wait()
        return _call(client)

    with client, ThreadPoolExecutor(calls) as pool:
        return list(pool.map(one, range(calls)))


def test_a_60_rpm_key_admits_exactly_60_of_150_concurrent_calls_over_3_workers(
    workers3: GatewayProcess,
) -> None:
    statuses = _storm(workers3.url, ALICE_KEY, 150)
    assert statuses.count(200) == 60
    assert statuses.count(429) == 90
    # every call left one usage row, whichever worker served it
    assert wait_usage(workers3.usage_db, 150) == 150
    text = metrics_text(workers3)
    assert requests_total(text) == 150
    assert re.search(r'^llmrelay_rate_limited_total\{scope="key"\} 90\.0$', text, re.M)


def test_a_budget_is_never_exceeded_by_concurrent_calls_over_3_workers(tmp_path: Path) -> None:
    cfg = base_config(
        tmp_path,
        {"mock": {"type": "mock", "models": {"echo": "echo"}}},
        pricing={"echo": {"input": 100.0, "output": 10_000.0}},  # USD per million tokens
    )
    cfg["auth"]["keys"][0]["budget"] = {"usd": 1.0, "period": "day"}
    gw = start_gateway(tmp_path, cfg, "--workers", "3")
    try:
        wait_for_workers(gw, 3)
        client = anthropic.Anthropic(base_url=gw.url, api_key=ALICE_KEY, max_retries=0)

        def one(_: int) -> int:
            try:
                client.messages.create(
                    model="mock/echo",
                    max_tokens=16,
                    messages=[{"role": "user", "content": "hello"}],
                    extra_headers={"connection": "close"},
                )
            except anthropic.RateLimitError:
                return 429
            return 200

        with client, ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(60)))
        served = results.count(200)
        assert served >= 3 and served + results.count(429) == 60, results
        wait_usage(gw.usage_db, 60)
        conn = sqlite3.connect(gw.usage_db)
        try:
            costs = [r[0] for r in conn.execute("SELECT cost_usd FROM usage WHERE status = 200")]
        finally:
            conn.close()
        assert len(costs) == served
        # Worst-case holds in the one shared store: never exceeded, not even by one call.
        assert sum(costs) <= 1.0
        assert sum(costs) == pytest.approx(0.111 * served)
    finally:
        gw.stop()


def test_metrics_add_up_every_worker(workers3: GatewayProcess) -> None:
    with openai.OpenAI(base_url=workers3.url + "/v1", api_key=BOB_KEY, max_retries=0) as client:
        for _ in range(30):  # a new connection each: the kernel spreads them over the workers
            client.chat.completions.create(
                model="local/echo",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"connection": "close"},
            )
    text = metrics_text(workers3)
    assert requests_total(text) == 30
    assert re.search(r"^llmrelay_workers_scraped 3\.0$", text, re.M)
    # each scrape answer holds the same totals, whichever worker it lands on
    assert {requests_total(metrics_text(workers3)) for _ in range(6)} == {30.0}


@pytest.mark.skipif(not REDIS_URL, reason="set LLMRELAY_TEST_REDIS_URL")
def test_limits_exact_across_workers_on_redis(tmp_path: Path) -> None:
    with redis_prefix() as prefix:
        cfg = base_config(tmp_path, MOCK, redis={"url": REDIS_URL, "prefix": prefix})
        cfg["auth"]["keys"][0]["limits"] = {"rpm": 40}
        gw = start_gateway(tmp_path, cfg, "--workers", "3")
        try:
            wait_for_workers(gw, 3)
            assert '"counters":"redis"' in gw.log()
            statuses = _storm(gw.url, ALICE_KEY, 100)
        finally:
            gw.stop()
    assert statuses.count(200) == 40
    assert statuses.count(429) == 60


def test_a_worker_killed_mid_stream_is_replaced_and_other_rows_are_kept(
    tmp_path: Path,
) -> None:
    fake = FakeAnthropic()
    fake.default_stream_delay_s = 0.3  # ~2.4 s a stream
    fake.start()
    providers = {
        "anthropic": {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": "sk-ant-upstream-0123456789",
            "models": {"claude": "claude-sonnet-4-6"},
        }
    }
    gw = start_gateway(tmp_path, base_config(tmp_path, providers), "--workers", "3")
    try:
        wait_for_workers(gw, 3)
        before = children(gw.proc.pid)
        assert len(before) == 3
        client = anthropic.Anthropic(base_url=gw.url, api_key=ALICE_KEY, max_retries=0)
        results: list[tuple[str, str | None]] = []  # (outcome, request id)
        lock = threading.Lock()

        def stream(_: int) -> None:
            try:
                with client.messages.stream(
                    model="anthropic/claude",
                    max_tokens=64,
                    messages=[{"role": "user", "content": "tell me a long story " * 5}],
                    extra_headers={"connection": "close"},
                ) as s:
                    rid = s.response.headers.get("request-id")
                    s.get_final_message()
                outcome = ("ok", rid)
            except Exception:  # the connection ended mid-stream (its worker was killed)
                outcome = ("cut", None)
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(fake.requests_to("/v1/messages")) < 24 and time.monotonic() < deadline:
            time.sleep(0.05)  # until every stream is open upstream
        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)
        for t in threads:
            t.join(60)
        ok = [rid for outcome, rid in results if outcome == "ok"]
        assert len(results) == 24
        assert 0 < len(ok) < 24, "the victim's streams were cut, the others completed"
        # the supervisor replaced the worker
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(children(gw.proc.pid) - {victim}) < 3:
            time.sleep(0.1)
        after = children(gw.proc.pid)
        assert victim not in after and len(after) == 3
        assert "worker died; restarting it" in gw.log()
        wait_for_workers(gw, 3)
        # every call a surviving worker completed has its usage row
        wait_usage(gw.usage_db, len(ok))
        conn = sqlite3.connect(gw.usage_db)
        try:
            stored = {r[0] for r in conn.execute("SELECT request_id FROM usage")}
        finally:
            conn.close()
        assert set(ok) <= stored
        # and every worker serves again
        for _ in range(6):
            answer = client.messages.create(
                model="anthropic/claude",
                max_tokens=8,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"connection": "close"},
            )
            assert answer.content
        client.close()
    finally:
        gw.stop()
        fake.stop()
    assert gw.proc.returncode == 0


def test_supervisor_exits_1_when_workers_keep_failing_at_start() -> None:
    from llmrelay.supervisor import supervise

    # A "worker" that exits before listening, every time.
    argv = [sys.executable, "-c", "raise SystemExit(3)"]
    assert supervise(2, argv, "127.0.0.1", free_port(), counters=True) == 1


def test_a_worker_that_never_listens_is_killed_and_counts_as_failing_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmrelay import supervisor

    monkeypatch.setattr(supervisor, "START_TIMEOUT_S", 0.5)
    argv = [sys.executable, "-c", "import time; time.sleep(600)"]
    assert supervisor.supervise(1, argv, "127.0.0.1", free_port(), counters=False) == 1


def test_serve_with_workers_on_a_busy_port_says_so(tmp_path: Path) -> None:
    import socket

    import yaml

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg_path = tmp_path / "c.yaml"
        cfg_path.write_text(yaml.safe_dump(base_config(tmp_path, MOCK)))
        run = subprocess.run(
            [
                *(sys.executable, "-m", "llmrelay", "serve", "--config", str(cfg_path)),
                *("--port", str(port), "--workers", "2"),
            ],
            capture_output=True,
            timeout=60,
        )
    assert run.returncode == 1
    assert b"cannot listen" in run.stderr


def test_sigterm_to_the_supervisor_stops_every_worker(workers3: GatewayProcess) -> None:
    before = children(workers3.proc.pid)
    workers3.proc.send_signal(signal.SIGTERM)
    assert workers3.proc.wait(30) == 0
    assert not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in before)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


_LAUNCH = """
import sys
from llmrelay.supervisor import supervise, worker_argv
cfg, port = sys.argv[1], int(sys.argv[2])
argv = worker_argv(["serve", "--config", cfg, "--host", "127.0.0.1", "--port", str(port)])
raise SystemExit(supervise(2, argv, "127.0.0.1", port, counters=True, reuse_port=False))
"""


def test_without_reuse_port_the_supervisor_passes_its_socket_and_sighup_ends_no_worker(
    tmp_path: Path,
) -> None:
    import yaml

    cfg = base_config(tmp_path, MOCK)
    cfg["auth"]["keys"][0]["limits"] = {"rpm": 10}
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    port = free_port()
    log_path = tmp_path / "gw.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, str(cfg_path), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gw = GatewayProcess(f"http://127.0.0.1:{port}", cfg_path, log_path, proc, tmp_path / "usage.db")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                wait_for_workers(gw, 2, timeout=1)
                break
            except (OSError, AssertionError):
                time.sleep(0.2)
        wait_for_workers(gw, 2)
        workers = children(proc.pid)
        assert len(workers) == 2
        statuses = _storm(gw.url, ALICE_KEY, 30)
        assert statuses.count(200) == 10 and statuses.count(429) == 20
        proc.send_signal(signal.SIGHUP)  # forwarded; no worker may die of it
        time.sleep(1.0)
        assert children(proc.pid) == workers
        assert "worker died" not in gw.log()
        assert requests_total(metrics_text(gw)) == 30
    finally:
        gw.stop()
    assert proc.returncode == 0


def test_sighup_to_the_supervisor_reloads_every_worker(tmp_path: Path) -> None:
    import yaml

    gw = start_gateway(tmp_path, base_config(tmp_path, MOCK), "--workers", "2")
    try:
        wait_for_workers(gw, 2)
        workers = children(gw.proc.pid)
        cfg = yaml.safe_load(gw.config_path.read_text())
        cfg["providers"]["local"]["models"]["added"] = "echo"
        gw.config_path.write_text(yaml.safe_dump(cfg))
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while gw.log().count("config reloaded") < 2:
            assert time.monotonic() < deadline, gw.log()
            time.sleep(0.1)
        # Fresh connections land on either worker: every one serves the new model.
        client = anthropic.Anthropic(base_url=gw.url, api_key=ALICE_KEY, max_retries=0)
        with client:
            for _ in range(20):
                msg = client.messages.create(
                    model="local/added",
                    max_tokens=8,
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"connection": "close"},
                )
                assert msg.content
        assert children(gw.proc.pid) == workers  # reloaded, not restarted
    finally:
        gw.stop()


def test_an_admin_reload_reaches_every_worker(tmp_path: Path) -> None:
    import json

    import yaml

    admin = "sk-admin-reload-test-key-0123456789"
    cfg = base_config(tmp_path, MOCK, admin={"key": admin}, logging={"format": "json"})
    gw = start_gateway(tmp_path, cfg, "--workers", "3")
    try:
        wait_for_workers(gw, 3)
        workers = children(gw.proc.pid)
        cfg["auth"]["keys"] = [k for k in cfg["auth"]["keys"] if k["key"] != BOB_KEY]
        gw.config_path.write_text(yaml.safe_dump(cfg))
        req = urllib.request.Request(
            gw.url + "/admin/reload",
            data=b"",
            method="POST",
            headers={"authorization": f"Bearer {admin}", "connection": "close"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
        assert answer["reloaded"] is True and answer["workers"] == 3

        def reloaded_by_sighup() -> set[int]:
            return {
                entry["worker"]
                for line in gw.log().splitlines()
                if line.startswith("{")
                and (entry := json.loads(line)).get("msg") == "config reloaded"
                and entry.get("trigger") == "sighup"
            }

        deadline = time.monotonic() + 30
        while reloaded_by_sighup() != {0, 1, 2}:
            assert time.monotonic() < deadline, gw.log()
            time.sleep(0.1)
        # Fresh connections land on every worker: none still knows the removed key.
        client = anthropic.Anthropic(base_url=gw.url, api_key=BOB_KEY, max_retries=0)
        with client:
            for _ in range(12):
                with pytest.raises(anthropic.AuthenticationError):
                    _call(client)
        assert children(gw.proc.pid) == workers  # reloaded, not restarted
    finally:
        gw.stop()


def test_a_second_supervisor_on_a_port_workers_listen_on_exits_1(tmp_path: Path) -> None:
    import yaml

    first = start_gateway(tmp_path, base_config(tmp_path, MOCK), "--workers", "2")
    try:
        wait_for_workers(first, 2)
        other = tmp_path / "other"
        other.mkdir()
        cfg_path = other / "c.yaml"
        cfg_path.write_text(yaml.safe_dump(base_config(other, MOCK)))
        port = first.url.rsplit(":", 1)[1]
        run = subprocess.run(
            [
                *(sys.executable, "-m", "llmrelay", "serve", "--config", str(cfg_path)),
                *("--port", port, "--workers", "2"),
            ],
            capture_output=True,
            timeout=60,
        )
        assert run.returncode == 1, run.stderr
        assert f"cannot listen on 0.0.0.0:{port}".encode() in run.stderr or (
            f"cannot listen on 127.0.0.1:{port}".encode() in run.stderr
        ), run.stderr
        assert b"Address already in use" in run.stderr
        assert first.proc.poll() is None
    finally:
        first.stop()
