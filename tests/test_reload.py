"""Live configuration: ``POST /admin/reload``, SIGHUP and ``server.watch_config`` reload the
config file of a running ``llmrelay serve``; an invalid file changes nothing and says why
(docs/reload.md). Driven with the official Anthropic SDK against the fake Anthropic API."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic

ADMIN_KEY = "sk-admin-reload-0123456789"
UPSTREAM_KEY = "sk-ant-upstream-reload-42"
PROVIDER_MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "hello there"}]


def _config(tmp: Path, fake: FakeAnthropic, **changes: Any) -> dict[str, Any]:
    models: dict[str, Any] = {"claude": PROVIDER_MODEL, **changes.pop("models", {})}
    provider: dict[str, Any] = {
        "type": "anthropic",
        "base_url": fake.url,
        "api_key": UPSTREAM_KEY,
        "models": models,
        **changes.pop("provider", {}),
    }
    return base_config(
        tmp,
        {"anthropic": provider},
        admin={"key": ADMIN_KEY},
        pricing=changes.pop("pricing", {PROVIDER_MODEL: {"input": 3.0, "output": 15.0}}),
        logging={"level": "info", "format": "json"},
        **changes,
    )


def _write(path: Path, config: dict[str, Any] | str) -> None:
    """Replace the file at once, as editors and config managers do."""
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _admin_reload(gw: GatewayProcess) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        gw.url + "/admin/reload",
        data=b"",
        method="POST",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _client(gw: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)


def _rows(gw: GatewayProcess, n: int) -> dict[str, dict[str, Any]]:
    """Usage rows by request id, waiting until there are at least ``n``."""
    import sqlite3

    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        db = sqlite3.connect(gw.usage_db)
        db.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in db.execute("SELECT * FROM usage")]
        except sqlite3.OperationalError:
            rows = []
        finally:
            db.close()
        if len(rows) >= n:
            break
        time.sleep(0.05)
    return {r["request_id"]: r for r in rows}


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _log_lines(gw: GatewayProcess, message: str) -> list[dict[str, Any]]:
    out = []
    for line in gw.log().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == message:
                out.append(entry)
    return out


def _cost(row: dict[str, Any], input_usd: float, output_usd: float) -> float:
    return (row["input_tokens"] * input_usd + row["output_tokens"] * output_usd) / 1_000_000


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(expected_api_key=UPSTREAM_KEY) as f:
        yield f


def test_reload_under_20_streams_adds_a_model_and_reprices_new_calls_only(
    tmp_path: Path, fake: FakeAnthropic
) -> None:
    gw = start_gateway(tmp_path, _config(tmp_path, fake))
    client = _client(gw)
    try:
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="anthropic/fresh", max_tokens=20, messages=HELLO)
        fake.gate = threading.Event()
        streamed: dict[int, tuple[str, str]] = {}
        errors: list[BaseException] = []

        def stream(i: int) -> None:
            try:
                s = client.messages.create(
                    model="anthropic/claude",
                    max_tokens=50,
                    messages=[{"role": "user", "content": f"stream number {i}"}],
                    stream=True,
                )
                text = "".join(
                    e.delta.text
                    for e in s
                    if e.type == "content_block_delta" and e.delta.type == "text_delta"
                )
                streamed[i] = (s.response.headers["request-id"], text)
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        _wait(lambda: fake.active_streams == 20, "20 streams held open by the fake")

        _write(
            gw.config_path,
            _config(
                tmp_path,
                fake,
                models={"fresh": PROVIDER_MODEL},
                pricing={PROVIDER_MODEL: {"input": 30.0, "output": 150.0}},
            ),
        )
        status, body = _admin_reload(gw)
        assert status == 200, body
        assert body == {
            "reloaded": True,
            "config": str(gw.config_path),
            "providers": 1,
            "models": 2,
            "virtual_models": 0,
            "workers": 1,
        }
        # The account's models changed: it has a new pool; the old one serves the 20 streams.
        assert fake.active_streams == 20
        assert not _log_lines(gw, "provider pool closed")

        fresh = client.messages.with_raw_response.create(
            model="anthropic/fresh", max_tokens=20, messages=HELLO
        )
        assert fresh.parse().content[0].type == "text"
        fresh_id = fresh.headers["request-id"]

        fake.gate.set()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert sorted(streamed) == list(range(20))
        assert all(text == f"echo: stream number {i}" for i, (_, text) in streamed.items())

        rows = _rows(gw, 22)
        for rid, _ in streamed.values():
            row = rows[rid]
            assert row["status"] == 200 and row["output_tokens"] > 0
            assert math.isclose(row["cost_usd"], _cost(row, 3.0, 15.0)), row
        new = rows[fresh_id]
        assert new["model"] == "anthropic/fresh"
        assert math.isclose(new["cost_usd"], _cost(new, 30.0, 150.0)), new
        # Once the last old stream ended, the old pool was closed (and only that one).
        _wait(lambda: bool(_log_lines(gw, "provider pool closed")), "the old pool to close")
        [closed] = _log_lines(gw, "provider pool closed")
        assert closed["provider"] == "anthropic"
        [reloaded] = _log_lines(gw, "config reloaded")
        assert reloaded["trigger"] == "admin"
    finally:
        client.close()
        gw.stop()


def test_an_unchanged_account_keeps_its_pool_across_a_reload(
    tmp_path: Path, fake: FakeAnthropic
) -> None:
    gw = start_gateway(tmp_path, _config(tmp_path, fake))
    client = _client(gw)
    try:
        _write(
            gw.config_path,
            _config(tmp_path, fake, pricing={PROVIDER_MODEL: {"input": 1.0, "output": 2.0}}),
        )
        assert _admin_reload(gw)[0] == 200
        msg = client.messages.with_raw_response.create(
            model="anthropic/claude", max_tokens=20, messages=HELLO
        )
        row = _rows(gw, 1)[msg.headers["request-id"]]
        assert math.isclose(row["cost_usd"], _cost(row, 1.0, 2.0))
        assert not _log_lines(gw, "provider pool closed")
    finally:
        client.close()
        gw.stop()


def _not_pem(tmp: Path) -> Path:
    path = tmp / "not-a-ca.pem"
    path.write_text("not a certificate\n")
    return path


BAD_CONFIGS: list[tuple[str, Callable[[Path, FakeAnthropic], dict[str, Any] | str], str]] = [
    (
        "syntax_error",
        lambda tmp, fake: "auth:\n  keys: [unclosed\n",
        "not valid YAML at line",
    ),
    (
        "unknown_provider_type",
        lambda tmp, fake: _config(tmp, fake, provider={"type": "anthropics"}),
        "providers.anthropic.type: expected one of anthropic, mock",
    ),
    (
        "unset_variable",
        lambda tmp, fake: _config(tmp, fake, provider={"api_key": "${LLMRELAY_TEST_RELOAD_UNSET}"}),
        "providers.anthropic.api_key: environment variable LLMRELAY_TEST_RELOAD_UNSET is not set",
    ),
    (
        "changed_port",
        lambda tmp, fake: _config(tmp, fake, server={"port": 4999}),
        "server.port: cannot change while the gateway runs",
    ),
    (
        "newly_forwarded_header",
        lambda tmp, fake: _config(tmp, fake, provider={"forward_headers": ["x-forwarded-for"]}),
        "providers.anthropic.forward_headers (x-forwarded-for): cannot change while",
    ),
    (
        "ca_file_not_pem",
        lambda tmp, fake: _config(tmp, fake, provider={"ca_file": str(_not_pem(tmp))}),
        "providers.anthropic.ca_file: CA file",
    ),
    (
        "changed_database",
        lambda tmp, fake: _config(tmp, fake, database=f"sqlite:///{tmp / 'other.db'}"),
        "database: cannot change while the gateway runs",
    ),
]


def test_invalid_reloads_keep_the_config_in_force_and_say_why(
    tmp_path: Path, fake: FakeAnthropic
) -> None:
    gw = start_gateway(tmp_path, _config(tmp_path, fake))
    client = _client(gw)
    try:
        for name, bad, expected in BAD_CONFIGS:
            config = bad(tmp_path, fake)
            if isinstance(config, dict):
                config["providers"]["anthropic"]["models"]["fresh"] = PROVIDER_MODEL
            _write(gw.config_path, config)
            status, body = _admin_reload(gw)
            assert status == 400, (name, body)
            assert body["type"] == "error"
            assert body["error"]["type"] == "invalid_request_error"
            message = body["error"]["message"]
            assert message.startswith("config reload refused: "), (name, message)
            assert f"{gw.config_path}: " in message, (name, message)
            assert expected in message, (name, message)
            # The old configuration is in force: its model answers, the new one does not.
            client.messages.create(model="anthropic/claude", max_tokens=20, messages=HELLO)
            with pytest.raises(anthropic.NotFoundError):
                client.messages.create(model="anthropic/fresh", max_tokens=20, messages=HELLO)
        refused = _log_lines(gw, "config reload refused; the configuration in force stays")
        assert len(refused) == len(BAD_CONFIGS)
        assert all(r["config"] == str(gw.config_path) for r in refused)
        assert not _log_lines(gw, "config reloaded")
    finally:
        client.close()
        gw.stop()


def test_reload_needs_the_admin_key(tmp_path: Path, fake: FakeAnthropic) -> None:
    gw = start_gateway(tmp_path, _config(tmp_path, fake))
    try:
        req = urllib.request.Request(
            gw.url + "/admin/reload",
            data=b"",
            method="POST",
            headers={"authorization": f"Bearer {ALICE_KEY}"},
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 401
        e.value.close()
        assert not _log_lines(gw, "config reloaded")
    finally:
        gw.stop()


def test_sighup_reloads_and_refuses_like_the_admin_route(
    tmp_path: Path, fake: FakeAnthropic
) -> None:
    gw = start_gateway(tmp_path, _config(tmp_path, fake))
    client = _client(gw)
    try:
        _write(gw.config_path, _config(tmp_path, fake, server={"port": 4999}))
        gw.proc.send_signal(signal.SIGHUP)
        _wait(
            lambda: bool(_log_lines(gw, "config reload refused; the configuration in force stays")),
            "the refused reload's log line",
        )
        [refused] = _log_lines(gw, "config reload refused; the configuration in force stays")
        assert refused["trigger"] == "sighup"
        assert "server.port: cannot change while the gateway runs" in refused["error"]
        assert gw.proc.poll() is None  # SIGHUP did not end the process

        _write(gw.config_path, _config(tmp_path, fake, models={"fresh": PROVIDER_MODEL}))
        gw.proc.send_signal(signal.SIGHUP)
        _wait(lambda: bool(_log_lines(gw, "config reloaded")), "the reload's log line")
        [reloaded] = _log_lines(gw, "config reloaded")
        assert (reloaded["trigger"], reloaded["models"]) == ("sighup", 2)
        msg = client.messages.create(model="anthropic/fresh", max_tokens=20, messages=HELLO)
        assert msg.content[0].type == "text"
    finally:
        client.close()
        gw.stop()


def test_watch_config_reloads_a_changed_file(tmp_path: Path, fake: FakeAnthropic) -> None:
    server = {"watch_config": True, "watch_interval_s": 0.1}
    gw = start_gateway(tmp_path, _config(tmp_path, fake, server=server))
    client = _client(gw)
    try:
        _write(
            gw.config_path,
            _config(tmp_path, fake, server=server, models={"fresh": PROVIDER_MODEL}),
        )
        _wait(lambda: bool(_log_lines(gw, "config reloaded")), "the watcher's reload")
        [reloaded] = _log_lines(gw, "config reloaded")
        assert reloaded["trigger"] == "watch"
        msg = client.messages.create(model="anthropic/fresh", max_tokens=20, messages=HELLO)
        assert msg.content[0].type == "text"
    finally:
        client.close()
        gw.stop()
