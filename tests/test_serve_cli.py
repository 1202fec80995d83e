"""``llmrelay serve``'s command line: what it refuses before starting anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import base_config

MOCK = {"local": {"type": "mock", "models": {"echo": "echo"}}}


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_serve_refuses_a_port_outside_1_to_65535(tmp_path: Path, port: str) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(base_config(tmp_path, MOCK)))
    run = subprocess.run(
        [sys.executable, "-m", "llmrelay", "serve", "--config", str(cfg_path), "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert f"argument --port: {port!r}: use a port number from 1 to 65535" in run.stderr


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("HTTPS_PROXY", "http://[proxy:3128", "not a proxy URL"),
        ("http_proxy", "http://proxy:99999", "not a proxy URL"),
        ("HTTPS_PROXY", "socks5://user:s3cret@proxy:1080", "the scheme must be http or https"),
    ],
)
def test_serve_refuses_an_unusable_proxy_variable_naming_it(
    tmp_path: Path, variable: str, value: str, problem: str
) -> None:
    import os

    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(base_config(tmp_path, MOCK)))
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    run = subprocess.run(
        [sys.executable, "-m", "llmrelay", "serve", "--config", str(cfg_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, variable: value},
    )
    assert run.returncode == 1, run.stderr
    assert f"llmrelay: {variable}: {problem}" in run.stderr
    assert "expected a proxy URL such as http://proxy.internal:3128" in run.stderr
    assert "s3cret" not in run.stderr  # the value is not echoed
    assert "Traceback" not in run.stderr
