"""Virtual keys, model permissions, rate limits and budgets, end to end on the embedded
default (SQLite + in-process counters), through the official SDKs and the admin API."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY, GatewayProcess, base_config

ADMIN_KEY = "sk-admin-0123456789abcdef0123"
MODEL = "mock/echo"
MSG: Any = [{"role": "user", "content": "hello"}]
# The mock answers "mock echo: hello" to MSG: 10 input and 11 output tokens (asserted below).
PRICE = {"echo": {"input": 1_000.0, "output": 100_000.0}}  # USD per million tokens

Start = Callable[..., GatewayProcess]


@pytest.fixture
def start(tmp_path: Path, gateway_factory: Start) -> Start:
    def go(**overrides: Any) -> GatewayProcess:
        cfg = base_config(
            tmp_path,
            {"mock": {"type": "mock", "models": {"echo": "echo", "other": "echo-2"}}},
            admin={"key": ADMIN_KEY},
            governance={"key_refresh_s": 0.2},
        )
        cfg.update(overrides)
        return gateway_factory(cfg)

    return go


def keys_with(**alice: Any) -> dict[str, Any]:
    return {
        "keys": [
            {"name": "alice", "key": ALICE_KEY, **alice},
            {"name": "bob", "key": BOB_KEY},
        ]
    }


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        gw.url + path,
        data=data,
        method=method,
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


_clients: list[anthropic.Anthropic | openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def ant(gw: GatewayProcess, key: str) -> anthropic.Anthropic:
    client = anthropic.Anthropic(api_key=key, base_url=gw.url, max_retries=0)
    _clients.append(client)
    return client


def oai(gw: GatewayProcess, key: str) -> openai.OpenAI:
    client = openai.OpenAI(api_key=key, base_url=gw.url + "/v1", max_retries=0)
    _clients.append(client)
    return client


def call(gw: GatewayProcess, key: str, model: str = MODEL) -> anthropic.types.Message:
    return ant(gw, key).messages.create(model=model, max_tokens=16, messages=MSG)


def rows(gw: GatewayProcess, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        found: list[dict[str, Any]] = []
        if gw.usage_db.exists():
            db = sqlite3.connect(gw.usage_db)
            db.row_factory = sqlite3.Row
            try:
                found = [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]
            except sqlite3.OperationalError:
                pass
            finally:
                db.close()
        if len(found) >= n or time.monotonic() > deadline:
            return found


def test_bad_key_is_401_in_both_shapes(start: Start) -> None:
    gw = start()
    with pytest.raises(anthropic.AuthenticationError) as a:
        call(gw, "sk-wrong-key-000000")
    assert a.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError) as o:
        oai(gw, "sk-wrong-key-000000").chat.completions.create(model=MODEL, messages=MSG)
    assert o.value.code == "invalid_api_key"


def test_model_not_allowed_is_403_naming_the_model(start: Start) -> None:
    gw = start(auth=keys_with(models=["mock/echo"]))
    assert call(gw, ALICE_KEY).content[0].text == "mock echo: hello"  # type: ignore[union-attr]
    with pytest.raises(anthropic.PermissionDeniedError) as a:
        call(gw, ALICE_KEY, "mock/other")
    assert a.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert "'mock/other'" in a.value.message and "alice" in a.value.message
    with pytest.raises(openai.PermissionDeniedError) as o:
        oai(gw, ALICE_KEY).chat.completions.create(model="mock/other", messages=MSG)
    assert "'mock/other'" in o.value.message
    # Bob has no model list: every model.
    assert call(gw, BOB_KEY, "mock/other").id
    # Nothing refused reached a provider, and the refusal has a usage row.
    last = rows(gw, 4)[-1]
    assert last["status"] == 200 and last["key_name"] == "bob"
    refused = [r for r in rows(gw, 4) if r["status"] == 403]
    assert len(refused) == 2 and all(r["input_tokens"] == 0 for r in refused)


def test_rate_limit_is_429_with_retry_after_in_both_shapes(start: Start) -> None:
    gw = start(auth=keys_with(limits={"rpm": 3}))
    for _ in range(3):
        call(gw, ALICE_KEY)
    with pytest.raises(anthropic.RateLimitError) as a:
        call(gw, ALICE_KEY)
    headers = a.value.response.headers
    assert a.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert 1 <= int(headers["retry-after"]) <= 60
    assert int(headers["retry-after-ms"]) > 0
    assert "3 requests per minute" in a.value.message
    with pytest.raises(openai.RateLimitError) as o:
        oai(gw, ALICE_KEY).chat.completions.create(model=MODEL, messages=MSG)
    assert o.value.response.headers["retry-after"]
    assert o.value.code == "rate_limit_exceeded"
    # Other keys are not affected.
    assert call(gw, BOB_KEY).id


def test_team_limit_is_shared_by_its_keys(start: Start) -> None:
    gw = start(
        auth={
            "keys": [
                {"name": "alice", "key": ALICE_KEY, "team": "ml"},
                {"name": "bob", "key": BOB_KEY, "team": "ml"},
            ]
        },
        teams={"ml": {"limits": {"rpm": 2}}},
    )
    call(gw, ALICE_KEY)
    call(gw, BOB_KEY)
    with pytest.raises(anthropic.RateLimitError) as a:
        call(gw, BOB_KEY)
    assert "team ml" in a.value.message


def test_model_limit_holds_across_keys(start: Start) -> None:
    gw = start(
        providers={
            "mock": {
                "type": "mock",
                "models": {"echo": {"id": "echo", "limits": {"rpm": 1}}, "other": "echo-2"},
            }
        }
    )
    call(gw, ALICE_KEY)
    with pytest.raises(anthropic.RateLimitError) as a:
        call(gw, BOB_KEY)
    assert "model mock/echo" in a.value.message
    assert call(gw, BOB_KEY, "mock/other").id


def test_token_limit_refuses_a_request_bigger_than_the_window(start: Start) -> None:
    gw = start(auth=keys_with(limits={"tpm": 100}))
    big: Any = [{"role": "user", "content": "x" * 2000}]
    with pytest.raises(anthropic.RateLimitError) as a:
        ant(gw, ALICE_KEY).messages.create(model=MODEL, max_tokens=16, messages=big)
    assert a.value.response.headers["x-should-retry"] == "false"
    assert "100 tokens per minute" in a.value.message
    assert call(gw, ALICE_KEY).id  # a small one fits


def test_budget_blocks_with_no_retry_and_is_never_exceeded(start: Start) -> None:
    # A call costs 10 input * $0.001 + 11 output * $0.1 = $1.11; its worst case is the body
    # estimate (~20 tokens) + 16 output tokens = about $1.62. A $3 budget admits a call while
    # spent + held + worst case <= $3: two calls ($2.22 spent), then no more.
    gw = start(auth=keys_with(budget={"usd": 3.0, "period": "day"}), pricing=PRICE)
    admitted = 0
    with pytest.raises(anthropic.RateLimitError) as a:
        for _ in range(10):
            call(gw, ALICE_KEY)
            admitted += 1
    assert admitted == 2
    err = a.value
    assert err.response.headers["x-should-retry"] == "false"
    assert "budget exceeded" in err.message and "'cfg:alice'" in err.message
    assert "$3.00 per day" in err.message
    with pytest.raises(openai.RateLimitError) as o:
        oai(gw, ALICE_KEY).chat.completions.create(model=MODEL, messages=MSG, max_tokens=16)
    assert o.value.code == "insufficient_quota"
    assert o.value.response.headers["x-should-retry"] == "false"
    served = [r for r in rows(gw, admitted + 2) if r["status"] == 200]
    assert len(served) == admitted
    assert all(r["input_tokens"] == 10 and r["output_tokens"] == 11 for r in served)
    assert all(r["cost_usd"] == pytest.approx(1.11) for r in served)
    assert sum(r["cost_usd"] for r in served) <= 3.0
    # The SDK's own retries would not retry it either (x-should-retry: false).
    retrying = anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=2)
    _clients.append(retrying)
    before = len(rows(gw, 0))
    with pytest.raises(anthropic.RateLimitError):
        retrying.messages.create(model=MODEL, max_tokens=16, messages=MSG)
    assert len(rows(gw, before + 1)) == before + 1


def test_audit_budget_logs_and_lets_calls_through(start: Start) -> None:
    gw = start(
        auth=keys_with(budget={"usd": 0.5, "period": "month", "mode": "audit"}), pricing=PRICE
    )
    for _ in range(3):
        call(gw, ALICE_KEY)
    deadline = time.monotonic() + 5
    while "budget exceeded (audit mode" not in gw.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "budget exceeded (audit mode" in gw.log()


def test_virtual_key_lifecycle_through_the_admin_api(start: Start) -> None:
    gw = start()
    status, created = admin(
        gw, "POST", "/admin/keys", {"name": "svc", "team": "ml", "models": [MODEL], "rpm": 100}
    )
    assert status == 201, created
    secret, key_id = created["key"], created["id"]
    assert secret.startswith("sk-llmrelay-") and key_id.startswith("vk_")
    assert created["limits"] == {"rpm": 100} and created["status"] == "active"
    assert call(gw, secret).id
    status, listed = admin(gw, "GET", "/admin/keys")
    assert status == 200 and [k["id"] for k in listed["data"]] == [key_id]
    assert "key" not in listed["data"][0]
    # Rotation: old and new both work during the grace period.
    status, rotated = admin(gw, "POST", f"/admin/keys/{key_id}/rotate", {"grace": "1h"})
    assert status == 200
    assert call(gw, rotated["key"]).id and call(gw, secret).id
    # Revocation: refused at once on this instance.
    status, revoked = admin(gw, "POST", f"/admin/keys/{key_id}/revoke")
    assert status == 200 and revoked["status"] == "revoked"
    for s in (secret, rotated["key"]):
        with pytest.raises(anthropic.AuthenticationError) as a:
            call(gw, s)
        assert "revoked" in a.value.message
    # The usage rows carry the key id and team.
    served = [r for r in rows(gw, 3) if r["key_id"] == key_id and r["status"] == 200]
    assert len(served) == 3 and all(r["team"] == "ml" for r in served)
    status, usage = admin(gw, "GET", "/admin/usage?by=team,model")
    assert status == 200
    ml = [g for g in usage["data"] if g["team"] == "ml"]
    assert ml and ml[0]["model"] == MODEL and ml[0]["requests"] >= 3


def test_admin_api_refuses_without_the_admin_key_and_checks_input(start: Start) -> None:
    gw = start()
    req = urllib.request.Request(gw.url + "/admin/keys", headers={"x-api-key": ALICE_KEY})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    e.value.close()
    assert e.value.code == 401
    status, body = admin(gw, "POST", "/admin/keys", {"name": "x", "rpm": -1})
    assert status == 400 and "rpm" in body["error"]["message"]
    status, body = admin(gw, "POST", "/admin/keys", {"name": "x", "colour": "red"})
    assert status == 400 and "colour" in body["error"]["message"]
    status, body = admin(gw, "POST", "/admin/keys/vk_nope/revoke")
    assert status == 404


def test_expired_key_is_refused(start: Start) -> None:
    gw = start()
    status, created = admin(
        gw, "POST", "/admin/keys", {"name": "brief", "expires_at": time.time() + 1}
    )
    assert status == 201
    assert call(gw, created["key"]).id
    time.sleep(1.1)
    with pytest.raises(anthropic.AuthenticationError) as a:
        call(gw, created["key"])
    assert "expired" in a.value.message


def test_cli_keys_create_list_revoke_against_a_running_gateway(start: Start) -> None:
    gw = start()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "llmrelay", "keys"]
    out = subprocess.run(
        [
            *cli,
            "create",
            "--config",
            str(gw.config_path),
            "--name",
            "cli-key",
            "--rpm",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    created = json.loads(out)
    secret = created["key"]
    deadline = time.monotonic() + 5
    while True:  # the running gateway picks it up within governance.key_refresh_s
        try:
            assert call(gw, secret).id
            break
        except anthropic.AuthenticationError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    listed = subprocess.run(
        [*cli, "list", "--config", str(gw.config_path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert created["id"] in listed and "rpm=5" in listed and secret not in listed
    subprocess.run(
        [*cli, "revoke", created["id"], "--config", str(gw.config_path)],
        check=True,
        env=env,
        capture_output=True,
    )
    deadline = time.monotonic() + 5
    while True:
        try:
            call(gw, secret)
            assert time.monotonic() < deadline
            time.sleep(0.1)
        except anthropic.AuthenticationError:
            break


def test_model_list_shows_only_the_models_a_key_may_use(start: Start) -> None:
    gw = start(auth=keys_with(models=["mock/echo"]))
    assert [m.id for m in ant(gw, ALICE_KEY).models.list()] == ["mock/echo"]
    assert [m.id for m in oai(gw, ALICE_KEY).models.list()] == ["mock/echo"]
    assert [m.id for m in ant(gw, BOB_KEY).models.list()] == ["mock/echo", "mock/other"]
    with pytest.raises(anthropic.PermissionDeniedError):
        ant(gw, ALICE_KEY).models.retrieve("mock/other")


def test_policy_applies_to_virtual_models_and_costs_the_serving_target(start: Start) -> None:
    # A virtual model whose primary is overloaded: the call is served by the fallback, the
    # key may use the virtual name only, the budget holds the dearest target's worst case,
    # and the row is costed at the serving target's price.
    gw = start(
        providers={
            "mock": {"type": "mock", "models": {"echo": "echo"}},
            "busy": {
                "type": "mock",
                "models": {"echo": "echo-dear"},
                "error_status": 529,
            },
        },
        models={
            "echo": {
                "targets": [
                    {"model": "busy/echo", "priority": 1},
                    {"model": "mock/echo", "priority": 2},
                ]
            }
        },
        routing={"rules": [{"match": {"team": "ops"}, "model": "mock/echo"}]},
        auth={
            "keys": [
                {
                    "name": "alice",
                    "key": ALICE_KEY,
                    "team": "ml",
                    "models": ["echo"],
                    "budget": {"usd": 1.8, "period": "day"},
                },
                {"name": "bob", "key": BOB_KEY, "team": "ops"},
            ]
        },
        pricing={
            "echo": {"input": 1_000.0, "output": 10_000.0},
            "echo-dear": {"input": 1_000.0, "output": 100_000.0},
        },
    )
    client = ant(gw, ALICE_KEY)
    raw = client.messages.with_raw_response.create(model="echo", max_tokens=16, messages=MSG)
    assert raw.headers["x-llmrelay-model"] == "mock/echo"
    assert raw.headers["x-llmrelay-attempts"] == "2"
    row = [r for r in rows(gw, 1) if r["status"] == 200][-1]
    assert (row["provider"], row["provider_model"], row["attempts"]) == ("mock", "echo", 2)
    # 10 input * $0.001 + 11 output * $0.01 at the serving target's (cheaper) price.
    assert row["cost_usd"] == pytest.approx(0.12)
    with pytest.raises(anthropic.PermissionDeniedError):
        call(gw, ALICE_KEY, "mock/echo")
    # The worst case is priced at the dearer target (~18 input tokens * $0.001 + 16 output
    # * $0.1 = ~$1.62): $0.12 spent + $1.62 fits $1.80, $0.24 + $1.62 does not. (At the
    # serving target's price, $0.18, many more would fit.)
    call(gw, ALICE_KEY, "echo")
    with pytest.raises(anthropic.RateLimitError) as a:
        call(gw, ALICE_KEY, "echo")
    assert "budget exceeded" in a.value.message
    # A rule on the caller's team: ops goes straight to mock/echo, one attempt.
    raw = ant(gw, BOB_KEY).messages.with_raw_response.create(
        model="echo", max_tokens=16, messages=MSG
    )
    assert (raw.headers["x-llmrelay-model"], raw.headers["x-llmrelay-attempts"]) == (
        "mock/echo",
        "1",
    )


def test_a_routing_rule_cannot_take_a_key_past_its_model_list(start: Start) -> None:
    gw = start(
        auth=keys_with(models=["mock/echo"]),
        routing={"rules": [{"match": {"metadata": {"tier": "batch"}}, "model": "mock/other"}]},
    )
    client = anthropic.Anthropic(
        api_key=ALICE_KEY,
        base_url=gw.url,
        max_retries=0,
        default_headers={"x-llmrelay-metadata": '{"tier": "batch"}'},
    )
    _clients.append(client)
    with pytest.raises(anthropic.PermissionDeniedError) as a:
        client.messages.create(model=MODEL, max_tokens=16, messages=MSG)
    assert "'mock/other'" in a.value.message
    # Bob may use every model: the rule applies.
    bob = anthropic.Anthropic(
        api_key=BOB_KEY,
        base_url=gw.url,
        max_retries=0,
        default_headers={"x-llmrelay-metadata": '{"tier": "batch"}'},
    )
    _clients.append(bob)
    raw = bob.messages.with_raw_response.create(model=MODEL, max_tokens=16, messages=MSG)
    assert raw.headers["x-llmrelay-model"] == "mock/other"


def test_admin_api_refuses_values_it_cannot_keep(start: Start) -> None:
    gw = start()
    for body, field in [
        ({"name": "x", "budget_usd": 1e400}, "budget_usd"),
        ({"name": "x", "rpm": 10**30}, "rpm"),
        ({"name": "x", "limits": "ab"}, "limits"),
        ({"name": "x", "limits": [1]}, "limits"),
        ({"name": "x", "expires_at": 1e400}, "expires_at"),
        ({"name": "x", "expires_at": 1}, "expires_at"),
        ({"name": "x", "expires_in": "1d", "expires_at": time.time() + 99}, "expires_in"),
        ({"name": "x", "rpm": 5, "limits": {"rpm": 6}}, "rpm"),
    ]:
        data = json.dumps(body).replace("Infinity", "1e400")
        req = urllib.request.Request(
            gw.url + "/admin/keys",
            data=data.encode(),
            method="POST",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        with e.value:
            assert e.value.code == 400, body
            err = json.loads(e.value.read())["error"]
        assert err["type"] == "invalid_request_error" and field in err["message"], (body, err)
    # A revoked key cannot be rotated back to life.
    _, created = admin(gw, "POST", "/admin/keys", {"name": "gone"})
    admin(gw, "POST", f"/admin/keys/{created['id']}/revoke")
    status, body = admin(gw, "POST", f"/admin/keys/{created['id']}/rotate", {})
    assert status == 409 and "revoked" in body["error"]["message"]
    # Mixing the admin key with another key is refused.
    req = urllib.request.Request(
        gw.url + "/admin/keys",
        headers={"authorization": f"Bearer {ADMIN_KEY}", "x-api-key": ALICE_KEY},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    e.value.close()
    assert e.value.code == 401


def test_model_limits_hold_when_the_model_is_a_virtual_models_target(start: Start) -> None:
    gw = start(
        providers={
            "mock": {
                "type": "mock",
                "models": {"lim": {"id": "echo", "limits": {"rpm": 3}}, "spare": "echo-2"},
            }
        },
        models={
            "only": {"targets": [{"model": "mock/lim"}]},
            "pair": {
                "targets": [
                    {"model": "mock/lim", "priority": 1},
                    {"model": "mock/spare", "priority": 2},
                ]
            },
        },
    )
    served = []
    for _ in range(3):
        raw = ant(gw, ALICE_KEY).messages.with_raw_response.create(
            model="only", max_tokens=16, messages=MSG
        )
        served.append(raw.headers["x-llmrelay-model"])
    assert served == ["mock/lim"] * 3
    # The target is full: a virtual model with one target answers 429 with retry-after...
    with pytest.raises(anthropic.RateLimitError) as a:
        call(gw, ALICE_KEY, "only")
    assert "model mock/lim allows 3 requests per minute" in a.value.message
    assert a.value.response.headers["retry-after"]
    # ...one with a second target moves on to it, and the model by name is full too.
    raw = ant(gw, BOB_KEY).messages.with_raw_response.create(
        model="pair", max_tokens=16, messages=MSG
    )
    assert raw.headers["x-llmrelay-model"] == "mock/spare"
    with pytest.raises(anthropic.RateLimitError):
        call(gw, BOB_KEY, "mock/lim")


def test_budget_holds_the_larger_of_the_two_output_limits(start: Start) -> None:
    # OpenAI bodies may carry max_tokens and max_completion_tokens; the translation sends
    # the latter, so the hold must not trust the smaller one ($0.1 an output token here).
    gw = start(auth=keys_with(budget={"usd": 3.0, "period": "day"}), pricing=PRICE)
    with pytest.raises(openai.RateLimitError) as o:
        oai(gw, ALICE_KEY).chat.completions.create(
            model=MODEL, messages=MSG, max_tokens=1, max_completion_tokens=200
        )
    assert o.value.code == "insufficient_quota" and "up to $20" in o.value.message
    status, body = admin(gw, "POST", "/admin/keys", {"name": "a\u0000b"})
    assert status == 400 and "name" in body["error"]["message"]
