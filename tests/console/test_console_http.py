"""The console over plain HTTP: every page behind a session, the sign-in (admin key only,
throttled), the cookie's attributes, CSRF and origin checks, sign-out, the redirect back to
the page asked for, and the admin endpoints the console reads."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, start_gateway
from tests.console.env import ADMIN_KEY, Browserless, console_config
from tests.fakes.openai_upstream import FakeOpenAI

PAGES = ["/ui/", "/ui/requests", "/ui/keys", "/ui/teams", "/ui/models", "/ui/requests/req_x"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, gpt: FakeOpenAI) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("console-http")
    # Many sign-ins from one address here; the throttle has its own test and gateway.
    gw = start_gateway(
        tmp, console_config(tmp, gpt.url, console={"login_failures_per_minute": 1000})
    )
    yield gw
    gw.stop()


def login_token(b: Browserless, path: str = "/ui/login") -> str:
    status, _, body = b.request("GET", path)
    assert status == 200
    found = re.search(r'name="login" value="([^"]+)"', body)
    assert found is not None
    return found.group(1)


def sign_in(
    b: Browserless, key: str = ADMIN_KEY, nxt: str = "/ui/"
) -> tuple[int, dict[str, str], str]:
    token = login_token(b)
    return b.request("POST", "/ui/login", {"login": token, "next": nxt, "key": key})


def csrf_of(body: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', body)
    assert found is not None
    return found.group(1)


def admin_get(gw: GatewayProcess, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(gw.url + path, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize("path", PAGES)
def test_every_page_without_a_session_goes_to_sign_in_keeping_the_page(
    gw: GatewayProcess, path: str
) -> None:
    status, headers, body = Browserless(gw.url).request("GET", path + "?range=7d")
    assert status == 303 and body == ""
    assert headers["location"].startswith("/ui/login?next=")
    assert urllib.parse.unquote(headers["location"].split("next=")[1]) == path + "?range=7d"


def test_a_forged_or_garbled_session_cookie_is_no_session(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    for value in ("v1.9999999999.00.abc", "x" * 300, "v1.1.2"):
        status, _, _ = b.request("GET", "/ui/", headers={"cookie": f"llmrelay_console={value}"})
        assert status == 303


def test_the_admin_key_signs_in_with_a_strict_httponly_cookie_and_returns_to_next(
    gw: GatewayProcess,
) -> None:
    b = Browserless(gw.url)
    status, headers, _ = sign_in(b, nxt="/ui/keys?q=a")
    assert status == 303 and headers["location"] == "/ui/keys?q=a"
    cookie = headers["set-cookie"]
    assert "llmrelay_console=v1." in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    assert "Secure" not in cookie  # plain HTTP, no trusted proxy
    status, _, body = b.request("GET", "/ui/keys")
    assert status == 200 and "<h1>Keys</h1>" in body


def test_next_outside_the_console_is_ignored(gw: GatewayProcess) -> None:
    for nxt in ("//evil.example/", "https://evil.example/", "/admin/keys", "/ui/\\evil"):
        status, headers, _ = sign_in(Browserless(gw.url), nxt=nxt)
        assert (status, headers["location"]) == (303, "/ui/")


@pytest.mark.parametrize("key", [ALICE_KEY, "sk-wrong-0123456789abcdef", ADMIN_KEY + "x", ""])
def test_gateway_keys_and_wrong_keys_cannot_sign_in(gw: GatewayProcess, key: str) -> None:
    b = Browserless(gw.url)
    status, headers, body = sign_in(b, key=key)
    assert status == 401 if key else status in (401, 400)
    assert "That is not the admin key" in body
    assert b.cookie("llmrelay_console") is None
    cookies = headers.get("set-cookie", "").splitlines()
    assert not [c for c in cookies if c.startswith("llmrelay_console=")]


def test_a_virtual_key_cannot_sign_in(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    _, _, body = b.request("GET", "/ui/keys")
    status, _, body = b.request("POST", "/ui/keys", {"csrf": csrf_of(body), "name": "vk-signin"})
    assert status == 200
    secret = re.search(r'id="secret" class="secret" readonly value="([^"]+)"', body)
    assert secret is not None
    status, _, body = sign_in(Browserless(gw.url), key=secret.group(1))
    assert status == 401 and "That is not the admin key" in body


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(
    gw: GatewayProcess,
) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    _, _, body = b.request("GET", "/ui/keys")
    token = csrf_of(body)
    status, _, body = b.request("POST", "/ui/keys", {"name": "no-csrf"})
    assert status == 403 and "CSRF token" in body
    status, _, body = b.request("POST", "/ui/keys", {"name": "bad-csrf", "csrf": token + "x"})
    assert status == 403
    status, _, body = b.request(
        "POST",
        "/ui/keys",
        {"name": "cross", "csrf": token},
        headers={"origin": "https://evil.example"},
    )
    assert status == 403 and "cross-origin" in body
    _, _, listing = b.request("GET", "/ui/keys")
    assert "no-csrf" not in listing and "bad-csrf" not in listing and "cross" not in listing


def test_signing_out_ends_the_session_even_for_a_copy_of_the_cookie(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    value = b.cookie("llmrelay_console")
    _, _, body = b.request("GET", "/ui/")
    status, headers, _ = b.request("POST", "/ui/logout", {"csrf": csrf_of(body)})
    assert status == 303 and headers["location"] == "/ui/login"
    assert 'llmrelay_console=""' in headers["set-cookie"]
    status, _, _ = Browserless(gw.url).request(
        "GET", "/ui/", headers={"cookie": f"llmrelay_console={value}"}
    )
    assert status == 303


def test_a_stale_sign_in_form_is_refused_without_counting_a_failure(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    status, _, body = b.request("POST", "/ui/login", {"login": "stale", "key": ADMIN_KEY})
    assert status == 403 and "sign in again" in body


def test_assets_need_no_session_and_hold_no_key(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    for name in ("console.css", "console.js"):
        status, headers, body = b.request("GET", f"/ui/static/{name}")
        assert status == 200 and headers["x-content-type-options"] == "nosniff"
        assert ADMIN_KEY not in body and "sk-" not in body
    status, _, _ = b.request("GET", "/ui/static/../../app.py")
    assert status in (303, 404)


def test_pages_forbid_inline_script_and_framing(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    _, headers, body = b.request("GET", "/ui/")
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and headers["cache-control"] == "no-store"
    assert ADMIN_KEY not in body


def test_an_unknown_console_page_is_a_404_page(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    status, _, body = b.request("GET", "/ui/nowhere")
    assert status == 404 and "no console page at /ui/nowhere" in body
    status, _, body = b.request("GET", "/ui/requests/req_missing")
    assert status == 404 and "no request with id" in body


def test_bad_overview_parameters_show_the_apis_message(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    status, _, body = b.request("GET", "/ui/?range=1y")
    assert status == 400 and "range: expected 24h, 7d, 30d or custom" in body
    status, body_json = admin_get(gw, "/admin/overview?by=colour")
    assert status == 400 and body_json["error"]["message"].startswith("by: expected key")


def test_admin_endpoints_show_what_the_console_shows(gw: GatewayProcess) -> None:
    client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
    client.messages.create(
        model="mock/echo", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    deadline = time.monotonic() + 10
    while True:
        status, d = admin_get(gw, "/admin/overview?range=24h&by=team")
        if d["totals"]["requests"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200 and d["bucket"] == "hour" and len(d["series"]) == 24
    assert sum(p["requests"] for p in d["series"]) == d["totals"]["requests"] >= 1
    assert d["breakdown"]["by"] == "team"
    assert "red" in [g["value"] for g in d["breakdown"]["top"]]
    assert d["live"]["database"] == "sqlite" and d["live"]["counters"] == "in-process"
    assert isinstance(d["live"]["in_flight"], int)
    status, m = admin_get(gw, "/admin/models")
    assert status == 200
    assert [t["model"] for t in m["virtual_models"][0]["targets"]] == ["busy/echo", "mock/echo"]
    status, bud = admin_get(gw, "/admin/budgets")
    assert status == 200 and bud["teams"][0]["name"] == "red"
    assert bud["teams"][0]["budget_usd"] == 50
    assert (
        bud["teams"][0]["spent_usd"] > 0
        and bud["teams"][0]["forecast_usd"] >= bud["teams"][0]["spent_usd"]
    )
    b = Browserless(gw.url)
    sign_in(b)
    status, _, body = b.request("GET", "/ui/teams")
    assert status == 200 and "<td>red</td>" in body and "of $50.00" in body
    assert '<progress max="50.0"' in body


def test_without_an_admin_key_the_console_is_off_and_the_log_says_why(
    tmp_path: Path, gpt: FakeOpenAI
) -> None:
    cfg = console_config(tmp_path, gpt.url)
    del cfg["admin"]
    gw = start_gateway(tmp_path, cfg)
    try:
        status, _, _ = Browserless(gw.url).request("GET", "/ui/")
        assert status == 404
    finally:
        gw.stop()
    assert "console not served at /ui/: no admin.key is set" in gw.log()


def test_console_enabled_false_keeps_the_admin_endpoints(tmp_path: Path, gpt: FakeOpenAI) -> None:
    gw = start_gateway(tmp_path, console_config(tmp_path, gpt.url, console={"enabled": False}))
    try:
        assert Browserless(gw.url).request("GET", "/ui/login")[0] == 404
        assert admin_get(gw, "/admin/overview")[0] == 200
    finally:
        gw.stop()


def test_five_wrong_keys_a_minute_from_one_address_then_429_even_for_the_right_key(
    tmp_path: Path, gpt: FakeOpenAI
) -> None:
    gw = start_gateway(tmp_path, console_config(tmp_path, gpt.url))
    try:
        b = Browserless(gw.url)
        for _ in range(5):
            assert sign_in(b, key="sk-wrong-0123456789")[0] == 401
        status, headers, body = sign_in(b)
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert "Too many failed sign-ins from your address" in body
        assert b.cookie("llmrelay_console") is None
    finally:
        gw.stop()


def test_secure_cookie_behind_a_trusted_https_proxy_only(tmp_path: Path, gpt: FakeOpenAI) -> None:
    trusted = console_config(tmp_path, gpt.url, console={"trust_forwarded_proto": True})
    gw = start_gateway(tmp_path, trusted)
    try:
        b = Browserless(gw.url)
        token = login_token(b)
        _, headers, _ = b.request(
            "POST",
            "/ui/login",
            {"login": token, "key": ADMIN_KEY},
            headers={"x-forwarded-proto": "https"},
        )
        assert "Secure" in headers["set-cookie"]
    finally:
        gw.stop()
    gw = start_gateway(tmp_path, console_config(tmp_path, gpt.url))
    try:
        b = Browserless(gw.url)
        token = login_token(b)
        _, headers, _ = b.request(
            "POST",
            "/ui/login",
            {"login": token, "key": ADMIN_KEY},
            headers={"x-forwarded-proto": "https"},
        )
        assert "Secure" not in headers["set-cookie"]
    finally:
        gw.stop()


def test_an_expired_session_goes_back_to_sign_in_keeping_the_page(gw: GatewayProcess) -> None:
    # A session the gateway itself signed (same admin key), whose life ended a second ago.
    from llmrelay.console.session import Sessions

    expired, _ = Sessions(ADMIN_KEY, 60, clock=lambda: time.time() - 61).issue()
    valid, _ = Sessions(ADMIN_KEY, 60).issue()
    b = Browserless(gw.url)
    status, _, _ = b.request(
        "GET", "/ui/requests?model=x", headers={"cookie": f"llmrelay_console={valid}"}
    )
    assert status == 200
    status, headers, _ = b.request(
        "GET", "/ui/requests?model=x", headers={"cookie": f"llmrelay_console={expired}"}
    )
    assert status == 303
    assert headers["location"] == "/ui/login?next=%2Fui%2Frequests%3Fmodel%3Dx"
    status, headers, _ = sign_in(b, nxt="/ui/requests?model=x")
    assert (status, headers["location"]) == (303, "/ui/requests?model=x")


def test_the_console_on_postgresql_shows_calls_and_their_attempts(
    tmp_path: Path, gpt: FakeOpenAI
) -> None:
    from llmrelay.stores.database import upgrade
    from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip

    with fresh_pg_schema(postgres_url_or_skip()) as url:
        upgrade(url)
        gw = start_gateway(tmp_path, console_config(tmp_path, gpt.url, database=url))
        try:
            with anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0) as c:
                got = c.messages.with_raw_response.create(
                    model="fallback", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
                )
            rid = got.headers["request-id"]
            deadline = time.monotonic() + 10
            while True:
                status, d = admin_get(gw, "/admin/overview?by=model")
                if d["totals"]["requests"] >= 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert d["live"]["database"] == "postgresql" and d["totals"]["requests"] == 1
            assert [g["value"] for g in d["breakdown"]["top"]] == ["fallback"]
            b = Browserless(gw.url)
            sign_in(b)
            status, _, body = b.request("GET", f"/ui/requests/{rid}")
            assert status == 200 and "busy/echo" in body and "mock/echo" in body
            status, _, body = b.request("GET", "/ui/?range=30d")
            assert status == 200 and "(calls, per day, UTC)" in body
        finally:
            gw.stop()


def test_make_runs_starter_config_serves_the_console_and_says_where(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    cfg = tmp_path / "llmrelay.local.yaml"
    subprocess.run([sys.executable, "-m", "llmrelay", "init", str(cfg)], check=True)
    config = yaml.safe_load(cfg.read_text())
    assert config["admin"]["key"].startswith("sk-admin-")
    snippet = subprocess.run(
        [sys.executable, "-m", "llmrelay", "snippet", "--config", str(cfg)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Web console: http://127.0.0.1:4000/ui/" in snippet
    assert config["admin"]["key"] not in snippet
    config["usage"]["path"] = str(tmp_path / "usage.db")
    gw = start_gateway(tmp_path, config)
    try:
        b = Browserless(gw.url)
        status, headers, _ = sign_in(b, key=config["admin"]["key"])
        assert status == 303 and "llmrelay_console=v1." in headers["set-cookie"]
    finally:
        gw.stop()


def test_a_database_error_is_a_503_page_with_the_reason_not_a_stack_trace(
    tmp_path: Path, gpt: FakeOpenAI
) -> None:
    import sqlite3

    gw = start_gateway(tmp_path, console_config(tmp_path, gpt.url))
    try:
        db = sqlite3.connect(gw.usage_db)
        with db:
            db.execute("DROP TABLE usage_hourly")  # the rollup is gone: every overview fails
        db.close()
        b = Browserless(gw.url)
        sign_in(b)
        status, _, body = b.request("GET", "/ui/")
        assert status == 503
        assert "the database could not complete the request (OperationalError)" in body
        assert "Traceback" not in body and "usage_hourly" not in body
        status, err = admin_get(gw, "/admin/overview")
        assert status == 503 and "OperationalError" in err["error"]["message"]
        status, _, body = b.request("GET", "/ui/models")  # pages that need no rollup still work
        assert status == 200
    finally:
        gw.stop()
    assert "console read failed" in gw.log() and "no such table: usage_hourly" in gw.log()


def test_the_request_log_pages_newest_first_keeping_its_filters(gw: GatewayProcess) -> None:
    with anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0) as client:
        ids = [
            client.messages.with_raw_response.create(
                model="mock/echo", max_tokens=8, messages=[{"role": "user", "content": f"n{i}"}]
            ).headers["request-id"]
            for i in range(3)
        ]
    b = Browserless(gw.url)
    sign_in(b)
    deadline = time.monotonic() + 10
    while True:
        _, _, body = b.request("GET", "/ui/requests?key=alice&limit=2")
        if ids[-1] in body or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    first = re.findall(r'href="/ui/requests/(req_[0-9a-f]+)"', body)
    assert first == [ids[2], ids[1]]
    older = re.search(r'href="(/ui/requests\?[^"]+)">Older calls', body)
    assert older is not None
    href = older.group(1).replace("&amp;", "&")
    assert "key=alice" in href and "limit=2" in href and "cursor=" in href
    _, _, body = b.request("GET", href)
    assert re.findall(r'href="/ui/requests/(req_[0-9a-f]+)"', body)[0] == ids[0]


def test_the_edit_form_needs_its_csrf_token_and_refuses_revoked_and_unknown_keys(
    gw: GatewayProcess,
) -> None:
    b = Browserless(gw.url)
    assert b.request("GET", "/ui/keys/vk_x/edit")[0] == 303  # no session: to the sign-in
    sign_in(b)
    _, _, body = b.request("GET", "/ui/keys")
    status, _, body = b.request(
        "POST", "/ui/keys", {"csrf": csrf_of(body), "name": "to-edit", "rpm": "10"}
    )
    assert status == 200
    key_id = next(
        k["id"] for k in admin_get(gw, "/admin/keys")[1]["data"] if k["name"] == "to-edit"
    )
    status, _, form = b.request("GET", f"/ui/keys/{key_id}/edit")
    assert status == 200 and 'name="rpm" value="10"' in form
    token = csrf_of(form)
    status, _, body = b.request("POST", f"/ui/keys/{key_id}/edit", {"rpm": "5"})
    assert status == 403 and "CSRF token" in body
    status, _, body = b.request(
        "POST", f"/ui/keys/{key_id}/edit", {"csrf": token, "rpm": "5", "budget_usd": "-2"}
    )
    assert status == 400 and "budget_usd: expected a positive" in body
    assert admin_get(gw, f"/admin/keys/{key_id}")[1]["limits"] == {"rpm": 10}
    status, _, body = b.request("POST", f"/ui/keys/{key_id}/edit", {"csrf": token, "rpm": "5"})
    assert status == 200 and "Key to-edit updated." in body
    assert admin_get(gw, f"/admin/keys/{key_id}")[1]["limits"] == {"rpm": 5}
    b.request("POST", f"/ui/keys/{key_id}/revoke", {"csrf": token})
    status, _, body = b.request("GET", f"/ui/keys/{key_id}/edit")
    assert status == 409 and "revoked" in body
    status, _, body = b.request("POST", f"/ui/keys/{key_id}/edit", {"csrf": token, "rpm": "7"})
    assert status == 409 and "revoked" in body and 'name="rpm" value="7"' in body
    assert b.request("GET", "/ui/keys/vk_nope/edit")[0] == 404
    # A config-file key is read-only here: the API's 409, no form.
    status, _, body = b.request("POST", "/ui/keys/alice/edit", {"csrf": token, "rpm": "7"})
    assert status == 409 and "config file" in body
