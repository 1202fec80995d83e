"""Editing a virtual key (PATCH /admin/keys/{id}) on a running gateway: the next call on
this instance sees the new models, limits and budget, through the official SDKs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import base_config
from tests.governance import test_policy_e2e as e2e
from tests.governance.test_policy_e2e import (
    ADMIN_KEY,
    MODEL,
    PRICE,
    Start,
    admin,
    call,
    keys_with,
    oai,
    rows,
)

OTHER = "mock/other"


@pytest.fixture
def start(tmp_path: Path, gateway_factory: Start) -> Iterator[Start]:
    """A gateway as test_policy_e2e.py starts it (mock/echo and mock/other)."""

    def go(**overrides: Any) -> Any:
        cfg = base_config(
            tmp_path,
            {"mock": {"type": "mock", "models": {"echo": "echo", "other": "echo-2"}}},
            admin={"key": ADMIN_KEY},
            governance={"key_refresh_s": 0.2},
        )
        cfg.update(overrides)
        return gateway_factory(cfg)

    yield go
    while e2e._clients:
        e2e._clients.pop().close()


def create(gw: Any, **spec: Any) -> tuple[str, str]:
    status, created = admin(gw, "POST", "/admin/keys", {"name": "svc", **spec})
    assert status == 201, created
    return created["id"], created["key"]


def test_allowing_a_model_takes_effect_on_the_next_call(start: Start) -> None:
    gw = start()
    key_id, secret = create(gw, models=[MODEL], team="ml")
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        call(gw, secret, OTHER)
    assert f"'{OTHER}'" in refused.value.message
    status, edited = admin(gw, "PATCH", f"/admin/keys/{key_id}", {"models": [MODEL, OTHER]})
    assert status == 200, edited
    assert edited["models"] == [MODEL, OTHER] and edited["team"] == "ml"
    answer = call(gw, secret, OTHER)
    assert answer.content[0].text == "mock echo: hello"  # type: ignore[union-attr]
    # The OpenAI surface sees the same key.
    assert oai(gw, secret).chat.completions.create(model=OTHER, messages=e2e.MSG).id
    # Taking the model away again refuses it again; the refusal has a usage row.
    status, _ = admin(gw, "PATCH", f"/admin/keys/{key_id}", {"models": [MODEL]})
    assert status == 200
    with pytest.raises(openai.PermissionDeniedError):
        oai(gw, secret).chat.completions.create(model=OTHER, messages=e2e.MSG)
    last = rows(gw, 4)[-1]
    assert last["key_id"] == key_id and last["status"] == 403
    status, got = admin(gw, "GET", f"/admin/keys/{key_id}")
    assert status == 200 and got["models"] == [MODEL]


def test_a_lower_rate_limit_takes_effect_and_null_removes_it(start: Start) -> None:
    gw = start()
    key_id, secret = create(gw, rpm=100, tpd=1_000_000)
    status, edited = admin(gw, "PATCH", f"/admin/keys/{key_id}", {"limits": {"rpm": 2}})
    assert status == 200 and edited["limits"] == {"rpm": 2, "tpd": 1_000_000}
    call(gw, secret)
    call(gw, secret)
    with pytest.raises(anthropic.RateLimitError) as limited:
        call(gw, secret)
    assert "2 requests per minute" in limited.value.message
    status, edited = admin(gw, "PATCH", f"/admin/keys/{key_id}", {"rpm": None})
    assert status == 200 and edited["limits"] == {"tpd": 1_000_000}
    assert call(gw, secret).id


def test_a_budget_change_takes_effect(start: Start) -> None:
    # A call costs $1.11 and holds about $1.62 while it runs (test_policy_e2e.py).
    gw = start(pricing=PRICE)
    key_id, secret = create(gw, budget_usd=100, budget_period="day")
    call(gw, secret)
    status, edited = admin(
        gw, "PATCH", f"/admin/keys/{key_id}", {"budget_usd": 2, "budget_period": "day"}
    )
    assert status == 200
    assert edited["budget"] == {"usd": 2.0, "period": "day", "mode": "enforce"}
    with pytest.raises(anthropic.RateLimitError) as over:
        call(gw, secret)
    assert "budget exceeded" in over.value.message and "$2.00 per day" in over.value.message
    # Another period is seeded from the usage log (rows are written in batches: wait for
    # the served call's row, as a period's first call after a restart would find it).
    assert [r["status"] for r in rows(gw, 2)] == [200, 429]
    body = {"budget_usd": 2, "budget_period": "month"}
    assert admin(gw, "PATCH", f"/admin/keys/{key_id}", body)[0] == 200
    with pytest.raises(anthropic.RateLimitError) as over:
        call(gw, secret)
    assert "$2.00 per month" in over.value.message
    status, edited = admin(gw, "PATCH", f"/admin/keys/{key_id}", {"budget_usd": None})
    assert status == 200 and edited["budget"] is None
    assert call(gw, secret).id


def test_edit_errors_name_the_field_and_the_reason(start: Start) -> None:
    gw = start(auth=keys_with())
    key_id, _ = create(gw, models=[MODEL])
    path = f"/admin/keys/{key_id}"
    for body, words in (
        ({"rpm": 0}, "rpm: expected a positive integer"),
        ({"models": [""]}, "models:"),
        ({"budget_usd": "lots"}, "budget_usd:"),
        ({"name": "renamed"}, "name: not editable"),
        ({"colour": "red"}, "colour"),
        ({}, "nothing to change"),
    ):
        status, err = admin(gw, "PATCH", path, body)
        assert status == 400, (body, err)
        assert err["error"]["type"] == "invalid_request_error"
        assert words in err["error"]["message"], err
    status, err = admin(gw, "PATCH", path, [1])
    assert status == 400 and "object" in err["error"]["message"]
    status, err = admin(gw, "PATCH", "/admin/keys/vk_nope", {"rpm": 1})
    assert status == 404 and "vk_nope" in err["error"]["message"]
    status, err = admin(gw, "PATCH", "/admin/keys/alice", {"rpm": 1})
    assert status == 409 and "config file" in err["error"]["message"]
    assert admin(gw, "POST", f"{path}/revoke")[0] == 200
    status, err = admin(gw, "PATCH", path, {"rpm": 1})
    assert status == 409 and "revoked" in err["error"]["message"]
    # Nothing refused changed the key.
    status, got = admin(gw, "GET", path)
    assert got["models"] == [MODEL] and got["limits"] == {} and got["status"] == "revoked"


def test_cli_keys_update_reaches_a_running_gateway_through_its_key_cache(start: Start) -> None:
    # The CLI writes the database directly, as another instance would: the running gateway
    # sees the bumped revision on its next refresh (governance.key_refresh_s: 0.2 s).
    gw = start(auth=keys_with())
    key_id, secret = create(gw, models=[MODEL])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "llmrelay", "keys", "update"]
    config = ["--config", str(gw.config_path)]
    done = subprocess.run(
        [*cli, key_id, *config, "--models", f"{MODEL},{OTHER}", "--rpm", "50", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    updated = json.loads(done.stdout)
    assert updated["models"] == [MODEL, OTHER] and updated["limits"] == {"rpm": 50}
    deadline = time.monotonic() + 5
    while True:
        try:
            assert call(gw, secret, OTHER).id
            break
        except anthropic.PermissionDeniedError:
            assert time.monotonic() < deadline, "the gateway never saw the edit"
            time.sleep(0.1)
    done = subprocess.run(
        [*cli, key_id, *config, "--models", "all", "--rpm", "none", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(done.stdout)["models"] is None
    assert json.loads(done.stdout)["limits"] == {}
    for args, code, words in (
        ([key_id, "--rpm", "lots"], 2, "--rpm: expected a whole number"),
        ([key_id], 2, "nothing to change"),
        (["vk_nope", "--rpm", "1"], 1, "no virtual key with id 'vk_nope'"),
        (["alice", "--rpm", "1"], 1, "config file"),
    ):
        failed = subprocess.run([*cli, *args, *config], capture_output=True, text=True, env=env)
        assert failed.returncode == code, failed.stderr
        assert words in failed.stderr
