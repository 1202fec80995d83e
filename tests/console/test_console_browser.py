"""The console in a real Chromium: sign in, the overview after calls through both SDKs, a
key created, used and revoked, a failed call with its fallback attempts, a target cooling
down, nothing a user wrote runs as script, and the screenshots the README shows.

Each test saves a screenshot under its own output folder (``tmp_path``) when it fails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY, GatewayProcess, start_gateway
from tests.console.browser import card, chromium_or_skip, sign_in
from tests.console.env import ADMIN_KEY, console_config
from tests.fakes.openai_upstream import FakeOpenAI

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
XSS = '<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">'


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, gpt: FakeOpenAI) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("console-browser")
    gw = start_gateway(tmp, console_config(tmp, gpt.url))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("dialog", lambda d: errors.append(f"dialog: {d.message}") or d.dismiss())
    pg.errors = errors
    yield pg
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        pg.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
    context.close()


def anthropic_client(gw: GatewayProcess, key: str = ALICE_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=gw.url, max_retries=0)


def wait_rows(gw: GatewayProcess, n: int) -> None:
    """Until the usage writer has written ``n`` rows (it flushes every 50 ms here)."""
    import sqlite3

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        db = sqlite3.connect(gw.usage_db)
        try:
            (count,) = db.execute("SELECT COUNT(*) FROM usage").fetchone()
        except sqlite3.OperationalError:
            count = 0
        finally:
            db.close()
        if count >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} usage rows after 10 s")


def test_sign_in_keeps_the_page_asked_for_and_the_overview_fills_after_both_sdks(
    gw: GatewayProcess, gpt: FakeOpenAI, page: Any
) -> None:
    with anthropic_client(gw) as client:
        client.messages.create(
            model="mock/echo", max_tokens=16, messages=[{"role": "user", "content": "hello"}]
        )
    with openai.OpenAI(api_key=BOB_KEY, base_url=gw.url + "/v1", max_retries=0) as oa:
        oa.chat.completions.create(model="openai/gpt", messages=[{"role": "user", "content": "hi"}])
    wait_rows(gw, 2)

    page.goto(gw.url + "/ui/?range=24h&by=model")
    assert "/ui/login" in page.url
    assert page.locator("h1").inner_text() == "Sign in to llmrelay"
    sign_in(page, "sk-wrong-0123456789abcdef")
    assert "That is not the admin key" in page.locator(".notice.error").inner_text()
    sign_in(page, ADMIN_KEY)
    assert page.url.endswith("/ui/?range=24h&by=model")
    assert int(card(page, "Requests").replace(",", "")) >= 2
    assert page.locator("figure.chart svg").count() == 4
    assert "(USD, per hour, UTC)" in page.locator("figure.chart").nth(2).inner_text()
    models = page.locator("table tbody tr td:first-child").all_inner_texts()
    assert "mock/echo" in models and "openai/gpt" in models
    page.click("text=7d")
    assert "range=7d" in page.url and "(calls, per day, UTC)" in page.inner_text("main")
    assert page.errors == []


def test_a_created_key_works_through_the_sdk_moves_its_budget_bar_and_is_revoked(
    gw: GatewayProcess, page: Any, request: pytest.FixtureRequest
) -> None:
    page.goto(gw.url + "/ui/keys")
    sign_in(page, ADMIN_KEY)
    page.click("summary:has-text('Create a key')")
    page.fill("input[name=name]", "laptop-ann")
    page.fill("input[name=team]", "red")
    page.fill("input[name=budget_usd]", "5")
    page.click("button:has-text('Create key')")
    secret = page.input_value("#secret")
    assert secret and "not shown again" in page.inner_text(".notice")
    assert secret in page.inner_text("#settings-json")
    assert f'"ANTHROPIC_BASE_URL": "{gw.url}"' in page.inner_text("#settings-json")
    assert secret in page.inner_text("#sdk-snippet")

    page.goto(gw.url + "/ui/keys")
    row = page.locator("table.keys tr", has_text="laptop-ann")
    assert float(row.locator("progress").get_attribute("value") or "nan") == 0
    client = anthropic_client(gw, secret)
    request.addfinalizer(client.close)
    for _ in range(3):
        client.messages.create(
            model="mock/echo", max_tokens=64, messages=[{"role": "user", "content": "x" * 200}]
        )
    deadline = time.monotonic() + 10
    while True:
        page.reload()
        value = float(row.locator("progress").get_attribute("value") or "0")
        if value > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert value > 0 and "of $5.00 (month)" in row.inner_text()

    row.locator("a:has-text('Revoke')").click()
    assert "cannot be undone" in page.inner_text("main")
    page.click("button:has-text('Revoke')")
    assert "Key laptop-ann revoked." in page.inner_text(".notice")
    assert "revoked" in page.locator("table.keys tr", has_text="laptop-ann").inner_text()
    with pytest.raises(anthropic.AuthenticationError) as err:
        client.messages.create(
            model="mock/echo", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 401


def test_a_529_with_fallback_shows_both_attempts_and_the_target_cooling_down(
    gw: GatewayProcess, page: Any, request: pytest.FixtureRequest
) -> None:
    client = anthropic_client(gw)
    request.addfinalizer(client.close)
    with pytest.raises(anthropic.InternalServerError) as failed:
        client.messages.create(
            model="busy/echo", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    assert failed.value.status_code == 529
    served = client.messages.with_raw_response.create(
        model="fallback", max_tokens=16, messages=[{"role": "user", "content": "fall back"}]
    )
    rid = served.headers["request-id"]
    wait_rows(gw, 1)
    time.sleep(0.2)

    page.goto(gw.url + "/ui/requests?status=5xx")
    sign_in(page, ADMIN_KEY)
    assert "status=5xx" in page.url
    statuses = page.locator("table.requests .status").all_inner_texts()
    assert statuses and set(statuses) == {"529"}

    page.fill("input[name=status]", "")
    page.fill("input[name=model]", "fallback")
    page.click("button:has-text('Filter')")
    page.locator("table.requests a", has_text=rid[:20]).first.click()
    attempts = page.locator("table.attempts tbody tr").all_inner_texts()
    assert len(attempts) == 2
    assert "busy/echo" in attempts[0] and "529" in attempts[0]
    assert "mock/echo" in attempts[1] and "200" in attempts[1]
    assert "fallback" in page.inner_text("dl.facts")

    page.goto(gw.url + "/ui/models")
    busy = page.locator("table tr", has_text="busy/echo").first
    assert re.search(r"cooling down, \d+ s left", busy.inner_text())
    assert re.search(r"\d+ attempts?, 100 % errors, p50 \d+ ms, p95 \d+ ms", busy.inner_text())
    mock = page.locator("table tr", has_text="mock/echo").first
    assert "ok" in mock.inner_text()


def test_screenshots_of_overview_keys_and_a_request_for_the_readme(
    gw: GatewayProcess, page: Any
) -> None:
    import json
    import urllib.request

    for name, team, budget in (("platform-ci", "red", 2), ("data-notebooks", "red", 20)):
        req = urllib.request.Request(
            gw.url + "/admin/keys",
            data=json.dumps({"name": name, "team": team, "budget_usd": budget}).encode(),
            headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            secret = json.loads(resp.read())["key"]
        with anthropic_client(gw, secret) as client:
            client.messages.create(
                model="mock/echo", max_tokens=64, messages=[{"role": "user", "content": "y" * 99}]
            )
    with anthropic_client(gw) as client:
        got = client.messages.with_raw_response.create(
            model="mock/echo",
            max_tokens=64,
            system="You are terse.",
            messages=[{"role": "user", "content": "What does llmrelay do?"}],
        )
    rid = got.headers["request-id"]
    wait_rows(gw, 1)
    time.sleep(0.2)
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.goto(gw.url + "/ui/")
    sign_in(page, ADMIN_KEY)
    shots = {
        "console-overview.png": "/ui/?range=24h&by=model",
        "console-keys.png": "/ui/keys",
        "console-request.png": f"/ui/requests/{rid}",
    }
    for name, path in shots.items():
        page.goto(gw.url + path)
        assert page.locator("h1").count() == 1
        page.screenshot(path=str(DOCS_IMG / name), full_page=True)
        assert (DOCS_IMG / name).stat().st_size > 10_000


def test_rotating_a_key_without_grace_shows_the_new_secret_and_ends_the_old_one(
    gw: GatewayProcess, page: Any
) -> None:
    page.goto(gw.url + "/ui/keys")
    sign_in(page, ADMIN_KEY)
    page.click("summary:has-text('Create a key')")
    page.fill("input[name=name]", "ci-bot")
    page.click("button:has-text('Create key')")
    old = page.input_value("#secret")
    with anthropic_client(gw, old) as client:
        client.messages.create(
            model="mock/echo", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    page.goto(gw.url + "/ui/keys")
    row = page.locator("table.keys tr", has_text="ci-bot")
    deadline = time.monotonic() + 10
    while "never" in row.locator("td").nth(6).inner_text() and time.monotonic() < deadline:
        time.sleep(0.1)
        page.reload()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row.locator("td").nth(6).inner_text())

    row.locator("a:has-text('Rotate')").click()
    page.select_option("select[name=grace]", "0s")
    page.click("button:has-text('Rotate')")
    new = page.input_value("#secret")
    assert new != old and "has a new secret" in page.inner_text(".notice")
    assert new in page.inner_text("#settings-json")
    with anthropic_client(gw, new) as client:
        client.messages.create(
            model="mock/echo", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    with anthropic_client(gw, old) as client, pytest.raises(anthropic.AuthenticationError):
        client.messages.create(
            model="mock/echo", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )


def test_every_page_fits_a_laptop_and_degrades_to_one_column_on_a_phone(
    gw: GatewayProcess, browser: Any, tmp_path: Path
) -> None:
    with anthropic_client(gw) as client:
        client.messages.create(
            model="mock/echo", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    wait_rows(gw, 1)
    for width in (1280, 390):
        context = browser.new_context(viewport={"width": width, "height": 800})
        pg = context.new_page()
        try:
            pg.goto(gw.url + "/ui/login")
            sign_in(pg, ADMIN_KEY)
            for path in ("/ui/", "/ui/requests", "/ui/keys", "/ui/teams", "/ui/models"):
                pg.goto(gw.url + path)
                # Wide tables scroll inside their own box; the page never scrolls sideways.
                overflow = pg.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, (width, path, overflow)
            pg.goto(gw.url + "/ui/")
            charts = pg.locator("figure.chart")
            first, second = charts.nth(0).bounding_box(), charts.nth(1).bounding_box()
            assert first is not None and second is not None
            side_by_side = abs(first["y"] - second["y"]) < 1
            assert side_by_side == (width == 1280), width
        except BaseException:
            pg.screenshot(path=str(tmp_path / f"failure-{width}.png"), full_page=True)
            raise
        finally:
            context.close()


def test_script_in_a_key_name_and_a_captured_body_never_runs(gw: GatewayProcess, page: Any) -> None:
    page.goto(gw.url + "/ui/keys")
    sign_in(page, ADMIN_KEY)
    page.click("summary:has-text('Create a key')")
    page.fill("input[name=name]", XSS)
    page.click("button:has-text('Create key')")
    secret = page.input_value("#secret")
    with anthropic_client(gw, secret) as client:
        got = client.messages.with_raw_response.create(
            model="mock/echo",
            max_tokens=32,
            system=XSS,
            messages=[{"role": "user", "content": XSS}],
        )
    rid = got.headers["request-id"]
    wait_rows(gw, 1)
    time.sleep(0.2)

    for path in ("/ui/keys", "/ui/?by=key", "/ui/requests", f"/ui/requests/{rid}"):
        page.goto(gw.url + path)
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("main script").count() == 0, path
        assert page.locator("main img").count() == 0, path
    # The request page shows the text as text: in the conversation and in the raw JSON.
    page.click("summary:has-text('Raw JSON')")
    assert XSS in page.inner_text(".conversation")
    assert page.evaluate("window.__xss") is None
    page.goto(gw.url + "/ui/keys")
    assert XSS[:50] in page.inner_text("table.keys")  # the cell shows 60 characters
    assert page.errors == []


def test_editing_a_key_allows_a_model_and_lowers_its_rate_limit(
    gw: GatewayProcess, page: Any
) -> None:
    import json
    import urllib.request

    req = urllib.request.Request(
        gw.url + "/admin/keys",
        data=json.dumps({"name": "edit-me", "models": ["mock/echo"], "rpm": 100}).encode(),
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        secret = json.loads(resp.read())["key"]
    hi: Any = [{"role": "user", "content": "hi"}]
    with anthropic_client(gw, secret) as client, pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="openai/gpt", max_tokens=16, messages=hi)

    page.goto(gw.url + "/ui/keys")
    sign_in(page, ADMIN_KEY)
    # Config-file keys are read-only: no Edit link in their table.
    assert page.locator("table:not(.keys) a:has-text('Edit')").count() == 0
    page.locator("table.keys tr", has_text="edit-me").locator("a:has-text('Edit')").click()
    assert page.input_value("input[name=models]") == "mock/echo"
    assert page.input_value("input[name=rpm]") == "100"
    # A value the API refuses: its message, the form kept as sent, nothing changed.
    page.fill("input[name=models]", "mock/echo, openai/gpt")
    page.fill("input[name=rpm]", "lots")
    page.click("button:has-text('Save changes')")
    assert "rpm: expected a whole number" in page.inner_text(".notice.error")
    assert page.input_value("input[name=models]") == "mock/echo, openai/gpt"
    page.fill("input[name=rpm]", "0")
    page.click("button:has-text('Save changes')")
    assert "rpm: expected a positive integer" in page.inner_text(".notice.error")
    page.fill("input[name=rpm]", "1")
    page.fill("input[name=budget_usd]", "7.5")
    page.click("button:has-text('Save changes')")
    assert "Key edit-me updated." in page.inner_text(".notice")
    row = page.locator("table.keys tr", has_text="edit-me")
    assert "mock/echo, openai/gpt" in row.inner_text() and "rpm 1" in row.inner_text()
    assert "of $7.50 (month)" in row.inner_text()
    # The next call sees the edit: the new model is allowed, the lower limit holds.
    with anthropic_client(gw, secret) as client:
        assert client.messages.create(model="openai/gpt", max_tokens=16, messages=hi).id
        with pytest.raises(anthropic.RateLimitError) as limited:
            client.messages.create(model="openai/gpt", max_tokens=16, messages=hi)
    assert "1 requests per minute" in limited.value.message
    assert page.errors == []


def test_long_key_values_are_cut_with_an_ellipsis_and_the_keys_table_fits_a_laptop(
    gw: GatewayProcess, page: Any
) -> None:
    import json
    import urllib.request

    name, team = "n" * 128, "t" * 128  # the longest the API takes, no space to wrap at
    models = ["mock/echo", "openai/gpt", "busy/echo", "fallback"] * 6
    req = urllib.request.Request(
        gw.url + "/admin/keys",
        data=json.dumps({"name": name, "team": team, "models": models}).encode(),
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
    page.goto(gw.url + "/ui/keys")
    sign_in(page, ADMIN_KEY)
    table = page.locator("table.keys")
    box = page.locator(".scroll", has=table)
    # The table is no wider than its box: nothing scrolls sideways at 1280 px.
    assert table.evaluate("t => t.scrollWidth") <= box.evaluate("b => b.clientWidth")
    row = page.locator("table.keys tr", has_text="nnnn")
    cell = row.locator(".clip").first
    assert cell.get_attribute("title") == name
    assert cell.evaluate("c => getComputedStyle(c).textOverflow") == "ellipsis"
    assert cell.evaluate("c => c.scrollWidth > c.clientWidth")  # cut on screen
    assert row.locator(".clip").nth(1).get_attribute("title") == team
    assert row.locator(".clip").nth(2).get_attribute("title") == ", ".join(models)
    assert page.errors == []
