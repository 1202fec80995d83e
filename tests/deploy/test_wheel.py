"""The wheel: `python -m build` makes it from the files the Docker image also gets
(pyproject.toml, README.md, llmrelay/), a fresh virtualenv installs it with its
dependencies (pip's cache or PyPI), and the installed `llmrelay` -- not this source tree --
prints its version, checks a config, serves, and answers the anthropic SDK through the mock
provider, leaving a usage row. About 30-60 s; runs in `make test` (marker `packaging`)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anthropic
import pytest
import yaml

import llmrelay
from tests.conftest import ALICE_KEY, GatewayProcess, base_config, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.packaging

#: Seconds for each step that may download: building (setuptools for the isolated build)
#: and installing the dependencies.
STEP_TIMEOUT_S = 600


def clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH, so the fresh venv cannot see the source tree."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}


def run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """One command of the installed package, outside the source tree; 60 s at most."""
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=clean_env(),
        check=False,
    )


def build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "llmrelay", src / "llmrelay", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)],
        check=True,
        capture_output=True,
        timeout=STEP_TIMEOUT_S,
    )
    (wheel,) = dist.glob("llmrelay-*.whl")
    return wheel


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)]
    out = subprocess.run(
        pip, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, env=clean_env(), check=False
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return venv / "bin"


def serve(bin_dir: Path, tmp: Path, config: Path) -> GatewayProcess:
    port = free_port()
    log_path = tmp / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(bin_dir / "llmrelay"), "serve", "--config", str(config), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=clean_env(),
        )
    gw = GatewayProcess(f"http://127.0.0.1:{port}", config, log_path, proc, tmp / "usage.db")
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{gw.log()}"
        try:
            with urllib.request.urlopen(gw.url + "/health", timeout=1):
                return gw
        except OSError:
            if time.monotonic() > deadline:
                gw.stop()
                raise AssertionError(f"serve did not answer /health:\n{gw.log()}") from None
            time.sleep(0.1)


def usage_rows(db: Path, timeout_s: float = 10.0) -> list[tuple[str, str, int]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows: list[tuple[str, str, int]] = []
        if db.exists():
            con = sqlite3.connect(db)
            try:
                rows = con.execute("SELECT key_name, model, status FROM usage").fetchall()
            except sqlite3.OperationalError:
                rows = []
            finally:
                con.close()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_wheel_installs_in_a_fresh_venv_and_serves(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    assert wheel.name == f"llmrelay-{llmrelay.__version__}-py3-none-any.whl"
    bin_dir = fresh_venv(tmp_path, wheel)

    where = run(bin_dir / "python", "-c", "import llmrelay; print(llmrelay.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(bin_dir.parent)  # the installed copy
    version = run(bin_dir / "llmrelay", "--version")
    assert version.stdout.strip() == f"llmrelay {llmrelay.__version__}"

    config = tmp_path / "llmrelay.yaml"
    providers = {"local": {"type": "mock", "models": {"echo": "echo"}}}
    config.write_text(yaml.safe_dump(base_config(tmp_path, providers)))
    checked = run(bin_dir / "llmrelay", "check-config", config)
    assert checked.returncode == 0, checked.stderr
    assert "local/echo -> mock:echo" in checked.stdout

    gw = serve(bin_dir, tmp_path, config)
    try:
        client = anthropic.Anthropic(base_url=gw.url, api_key=ALICE_KEY, max_retries=0)
        message = client.messages.create(
            model="local/echo",
            max_tokens=32,
            messages=[{"role": "user", "content": "hello from a wheel"}],
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == "mock echo: hello from a wheel"
        assert usage_rows(gw.usage_db) == [("alice", "local/echo", 200)]
    finally:
        gw.stop()
    assert gw.proc.returncode is not None
