"""Key names are unique: usage reports and routing rules go by name, so a second live key
"bob", or a virtual key named like a config-file key, would merge with the first. Through
the admin API (409 ``conflict_error`` in Anthropic's envelope) and ``llmrelay keys create``
(a message and a non-zero exit)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import GatewayProcess, base_config, start_gateway

ADMIN_KEY = "sk-admin-0123456789abcdef0123"


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        gw.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def keys_create(gw: GatewayProcess, name: str) -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, "-m", "llmrelay", "keys", "create", "--config", str(gw.config_path)]
    return subprocess.run(
        [*cli, "--name", name, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_key_of_one_name_is_refused_by_the_admin_api_and_the_cli(
    tmp_path: Path,
) -> None:
    cfg = base_config(
        tmp_path,
        {"mock": {"type": "mock", "models": {"echo": "echo"}}},
        admin={"key": ADMIN_KEY},
        governance={"key_refresh_s": 0.2},
    )
    gw = start_gateway(tmp_path, cfg)
    try:
        status, first = admin(gw, "POST", "/admin/keys", {"name": "svc"})
        assert status == 201, first
        status, body = admin(gw, "POST", "/admin/keys", {"name": "svc", "rpm": 5})
        assert status == 409, body
        assert body["type"] == "error" and body["error"]["type"] == "conflict_error"
        message = body["error"]["message"]
        assert "'svc' already exists" in message and first["id"] in message
        assert body["request_id"]
        # A config-file key's name (alice is in base_config's auth.keys).
        status, body = admin(gw, "POST", "/admin/keys", {"name": "alice"})
        assert status == 409 and body["error"]["type"] == "conflict_error"
        assert "config file" in body["error"]["message"]
        # The CLI says the same and exits non-zero.
        done = keys_create(gw, "svc")
        assert done.returncode == 1 and done.stdout == "", done
        assert done.stderr.startswith("llmrelay keys create: a virtual key named 'svc'")
        assert first["id"] in done.stderr
        done = keys_create(gw, "bob")
        assert done.returncode == 1 and "config file" in done.stderr, done
        # One key "svc" in the store, whatever was tried.
        status, listed = admin(gw, "GET", "/admin/keys")
        assert [k["name"] for k in listed["data"]] == ["svc"]
        # Revoking frees the name.
        status, _ = admin(gw, "POST", f"/admin/keys/{first['id']}/revoke")
        assert status == 200
        done = keys_create(gw, "svc")
        assert done.returncode == 0, done
        assert json.loads(done.stdout)["name"] == "svc"
    finally:
        gw.stop()
