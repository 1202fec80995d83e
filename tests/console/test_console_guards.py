"""What a newcomer check found (issue 15), over HTTP against a real gateway: the sign-in's
``next`` stays under /ui/ once resolved; wrong admin and metrics keys share the sign-in's
per-address throttle; key specs are bounded and name only routable models."""

from __future__ import annotations

import html
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, start_gateway
from tests.console.env import ADMIN_KEY, Browserless, console_config
from tests.console.test_console_http import csrf_of, sign_in
from tests.fakes.openai_upstream import FakeOpenAI

METRICS_KEY = "sk-metrics-0123456789abcdef"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, gpt: FakeOpenAI) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("console-guards")
    gw = start_gateway(
        tmp, console_config(tmp, gpt.url, console={"login_failures_per_minute": 1000})
    )
    yield gw
    gw.stop()


def call(
    gw: GatewayProcess,
    method: str,
    path: str,
    body: object = None,
    key: str = ADMIN_KEY,
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"authorization": f"Bearer {key}"}
    if data is not None:
        headers["content-type"] = "application/json"
    req = urllib.request.Request(gw.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw, status, hdrs = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as err:
        raw, status, hdrs = err.read(), err.code, err.headers
    ctype = hdrs.get("content-type", "")
    parsed = json.loads(raw) if ctype.startswith("application/json") else raw.decode()
    return status, {k.lower(): v for k, v in hdrs.items()}, parsed


@pytest.mark.parametrize(
    "nxt",
    [
        "/ui/../admin/keys",
        "/ui/%2e%2e/admin/keys",
        "/ui/%2E%2E/admin/keys",
        "/ui/./../admin",
        "/ui//evil.example/",
        "/ui/%2f%2fevil.example/",
        "/ui/%5cevil",
        "/ui/keys/..",
    ],
)
def test_next_that_leaves_the_console_once_resolved_goes_to_the_overview(
    gw: GatewayProcess, nxt: str
) -> None:
    status, headers, _ = sign_in(Browserless(gw.url), nxt=nxt)
    assert (status, headers["location"]) == (303, "/ui/")


def test_next_inside_the_console_is_kept(gw: GatewayProcess) -> None:
    status, headers, _ = sign_in(Browserless(gw.url), nxt="/ui/requests?model=a%2Fb&range=7d")
    assert (status, headers["location"]) == (303, "/ui/requests?model=a%2Fb&range=7d")


def test_wrong_admin_keys_are_throttled_with_the_console_sign_in(
    tmp_path: Path, gpt: FakeOpenAI
) -> None:
    cfg = console_config(tmp_path, gpt.url)
    cfg["observability"]["metrics"] = {"key": METRICS_KEY}
    gw = start_gateway(tmp_path, cfg)
    try:
        for _ in range(3):
            status, _, body = call(gw, "GET", "/admin/keys", key="sk-wrong-0123456789")
            assert status == 401 and body["error"]["type"] == "authentication_error"
        assert call(gw, "GET", "/metrics", key="sk-wrong-metrics")[0] == 401
        assert sign_in(Browserless(gw.url), key="sk-wrong-console")[0] == 401
        # Five wrong keys from this address, whichever door: now even the right key waits.
        status, headers, body = call(gw, "GET", "/admin/keys")
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
        assert "too many wrong admin keys" in body["error"]["message"]
        status, headers, body = call(gw, "GET", "/metrics", key=METRICS_KEY)
        assert status == 429 and body["error"]["type"] == "rate_limit_error"
        status, _, page = sign_in(Browserless(gw.url))
        assert status == 429 and "Too many failed sign-ins" in page
    finally:
        gw.stop()


def test_the_right_admin_key_is_not_counted(tmp_path: Path, gpt: FakeOpenAI) -> None:
    gw = start_gateway(tmp_path, console_config(tmp_path, gpt.url))
    try:
        for _ in range(8):
            assert call(gw, "GET", "/admin/keys")[0] == 200
    finally:
        gw.stop()


def test_a_body_the_gateway_refuses_is_not_the_targets_error_and_names_no_provider(
    gw: GatewayProcess,
) -> None:
    # An Anthropic block OpenAI's wire cannot carry: refused before anything is sent.
    body = {
        "model": "openai/gpt",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "bogus"}]}],
    }
    req = urllib.request.Request(
        gw.url + "/v1/messages",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"x-api-key": ALICE_KEY, "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 400
    rid = json.loads(refused.value.read())["request_id"]
    refused.value.close()
    models = call(gw, "GET", "/admin/models")[2]["models"]
    gpt = next(m for m in models if m["model"] == "openai/gpt")
    assert gpt["provider"] == "openai" and gpt["recent"] is None
    row = wait_for_row(gw, rid)
    assert (row["status"], row["provider"], row["error_type"]) == (400, "", "invalid_request_error")
    assert [a["target"] for a in row["attempt_log"]] == ["openai/gpt"]


def wait_for_row(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    """The request log's row of ``request_id`` (rows are written in batches: up to 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        status, _, body = call(gw, "GET", f"/admin/requests/{request_id}")
        if status == 200:
            return dict(body)
        assert time.monotonic() < deadline, f"no row for {request_id}: {status} {body}"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ({"budget_usd": 1e308}, "budget_usd"),
        ({"budget_usd": 1_000_000_001}, "budget_usd"),
        ({"models": ["mock/echo", "nope/ghost"]}, "'nope/ghost'"),
        ({"models": ["echo"]}, "'echo'"),
        ({"team": "t" * 129}, "team: at most 128 characters"),
        ({"name": "n" * 129}, "name: at most 128 characters"),
    ],
)
def test_a_key_spec_past_its_bounds_or_naming_an_unrouted_model_is_a_400_naming_it(
    gw: GatewayProcess, spec: dict[str, Any], names: str
) -> None:
    status, _, body = call(gw, "POST", "/admin/keys", {"name": "bounds", **spec})
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert names in body["error"]["message"]


def test_a_key_at_its_bounds_with_routed_and_virtual_models_is_created_and_edited(
    gw: GatewayProcess,
) -> None:
    spec = {
        "name": "n" * 128,
        "team": "t" * 128,
        "models": ["mock/echo", "fallback"],
        "budget_usd": 1e9,
    }
    status, _, key = call(gw, "POST", "/admin/keys", spec)
    assert status == 201 and key["models"] == ["mock/echo", "fallback"]
    status, _, body = call(gw, "PATCH", f"/admin/keys/{key['id']}", {"models": ["ghost"]})
    assert status == 400 and "'ghost'" in body["error"]["message"]
    status, _, body = call(gw, "PATCH", f"/admin/keys/{key['id']}", {"budget_usd": 1e308})
    assert status == 400 and "budget_usd" in body["error"]["message"]
    status, _, edited = call(gw, "PATCH", f"/admin/keys/{key['id']}", {"models": ["openai/gpt"]})
    assert status == 200 and edited["models"] == ["openai/gpt"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("budget_usd", "1e308", "budget_usd"),
        ("budget_usd", "inf", "budget_usd"),
        ("budget_usd", "nan", "budget_usd"),
        ("team", "t" * 200, "team: at most 128 characters"),
        ("models", "mock/echo, nope/ghost", "nope/ghost"),
    ],
)
def test_the_console_form_refuses_what_the_api_refuses(
    gw: GatewayProcess, field: str, value: str, says: str
) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    _, _, page = b.request("GET", "/ui/keys")
    form = {"csrf": csrf_of(page), "name": f"form-{field}", field: value}
    status, _, page = b.request("POST", "/ui/keys", form)
    assert status == 400 and html.escape(says, quote=True) in page
    assert 'id="secret"' not in page


def test_a_deleted_database_is_restored_shown_on_the_overview_and_survives_a_restart(
    tmp_path: Path, gpt: FakeOpenAI
) -> None:
    cfg = console_config(tmp_path, gpt.url)
    gw = start_gateway(tmp_path, cfg)
    hi: Any = [{"role": "user", "content": "hi"}]
    try:
        status, _, key = call(gw, "POST", "/admin/keys", {"name": "survivor"})
        assert status == 201
        with anthropic.Anthropic(api_key=key["key"], base_url=gw.url, max_retries=0) as client:
            first = client.messages.with_raw_response.create(
                model="mock/echo", max_tokens=16, messages=hi
            )
            wait_for_row(gw, first.headers["request-id"])
            for suffix in ("", "-wal", "-shm"):
                Path(f"{gw.usage_db}{suffix}").unlink(missing_ok=True)
            second = client.messages.with_raw_response.create(
                model="mock/echo", max_tokens=16, messages=hi
            )
        wait_for_row(gw, second.headers["request-id"])
        # The next store operation a second on (a key refresh, a usage batch) restores it.
        deadline = time.monotonic() + 15
        while not gw.usage_db.exists():
            assert time.monotonic() < deadline, "usage.db was not restored"
            time.sleep(0.1)
        b = Browserless(gw.url)
        sign_in(b)
        _, _, page = b.request("GET", "/ui/")
        assert "Database file: usage.db was deleted while the gateway ran" in page
        assert "nothing lost" in page
        assert call(gw, "GET", "/admin/overview")[2]["live"]["database_incident"]
        with urllib.request.urlopen(gw.url + "/ready", timeout=10) as ready:
            assert ready.status == 200  # fail-open, and nothing is missing
    finally:
        gw.stop()
    log = gw.log_path.read_text()
    assert log.count("was deleted while the gateway ran") == 1, log[-2000:]

    gw = start_gateway(tmp_path, cfg)  # a restart finds the key and both rows
    try:
        with anthropic.Anthropic(api_key=key["key"], base_url=gw.url, max_retries=0) as client:
            assert client.messages.create(model="mock/echo", max_tokens=16, messages=hi).id
        for answer in (first, second):
            assert call(gw, "GET", f"/admin/requests/{answer.headers['request-id']}")[0] == 200
    finally:
        gw.stop()


def test_a_post_without_a_body_is_refused_for_its_missing_csrf_token(gw: GatewayProcess) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    status, _, page = b.request("POST", "/ui/keys/vk_0000000000000000/revoke")
    assert status == 403 and "<html" in page


def test_pages_name_an_icon_the_console_serves(gw: GatewayProcess) -> None:
    _, _, page = Browserless(gw.url).request("GET", "/ui/login")
    assert '<link rel="icon" href="/ui/static/favicon.svg"' in page
    status, headers, svg = Browserless(gw.url).request("GET", "/ui/static/favicon.svg")
    assert status == 200 and headers["content-type"].startswith("image/svg+xml")
    assert svg.startswith("<svg")


def test_a_call_no_provider_took_part_in_shows_no_served_by(gw: GatewayProcess) -> None:
    body = {
        "model": "openai/gpt",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "bogus"}]}],
    }
    req = urllib.request.Request(
        gw.url + "/v1/messages",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"x-api-key": ALICE_KEY, "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    rid = json.loads(refused.value.read())["request_id"]
    refused.value.close()
    wait_for_row(gw, rid)
    b = Browserless(gw.url)
    sign_in(b)
    status, _, page = b.request("GET", f"/ui/requests/{rid}")
    assert status == 200
    served = re.search(r"<dt>Served by</dt><dd>([^<]*)</dd>", page)
    assert served is not None and served.group(1) == "—"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("since=2026-12-06&until=2026-12-01", "until: expected a time after since"),
        ("model=" + "m" * 3000, "model: at most 512 characters"),
    ],
)
def test_a_request_log_filter_that_cannot_be_used_is_a_console_page_saying_why(
    gw: GatewayProcess, query: str, says: str
) -> None:
    b = Browserless(gw.url)
    sign_in(b)
    status, headers, page = b.request("GET", "/ui/requests?" + query)
    assert status == 400 and headers["content-type"].startswith("text/html")
    assert says in page
    status, _, body = call(gw, "GET", "/admin/requests?" + query)
    assert status == 400 and says in body["error"]["message"]
