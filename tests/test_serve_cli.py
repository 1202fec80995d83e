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
