"""Subscription passthrough (``auth: passthrough``): the caller's own Claude OAuth token goes
to Anthropic, the gateway key comes in ``x-llmrelay-key``; the token is never logged, never
stored, never sent to another account."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from llmrelay.policy.prices import SHIPPED_PRICES
from tests.conftest import ALICE_KEY, BOB_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic, error_body, json_reply
from tests.gateway_env import raw_request

OAUTH = "sk-ant-oat01-subscription-token-0123456789abcdefXYZ"
OTHER_KEY = "sk-ant-other-account-key-4242"
FRUGAL_KEY = "sk-test-frugal-0123456789abcdef"
MODEL = "claude-sonnet-4-6"


@dataclass
class Env:
    seat: FakeAnthropic
    other: FakeAnthropic
    gw: GatewayProcess

    def client(self, **kw: Any) -> anthropic.Anthropic:
        """Claude Code's subscription mode: its OAuth token as ``auth_token``, the gateway
        key as a custom header (``ANTHROPIC_CUSTOM_HEADERS``)."""
        kw.setdefault("auth_token", OAUTH)
        kw.setdefault("default_headers", {"x-llmrelay-key": ALICE_KEY})
        return anthropic.Anthropic(base_url=self.gw.url, max_retries=0, **kw)

    def row(self, request_id: str) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            db = sqlite3.connect(self.gw.usage_db)
            db.row_factory = sqlite3.Row
            try:
                found = db.execute("SELECT * FROM usage WHERE request_id = ?", (request_id,))
                row = found.fetchone()
            except sqlite3.OperationalError:
                row = None
            finally:
                db.close()
            if row is not None:
                return dict(row)
            time.sleep(0.05)
        raise AssertionError(f"no usage row for {request_id}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("subscription")
    seat, other = FakeAnthropic(expected_api_key=OAUTH), FakeAnthropic(expected_api_key=OTHER_KEY)
    seat.start()
    other.start()
    providers: dict[str, Any] = {
        "seat": {
            "type": "anthropic",
            "base_url": seat.url,
            "auth": "passthrough",
            "models": {"claude": MODEL},
        },
        "other": {
            "type": "anthropic",
            "base_url": other.url,
            "api_key": OTHER_KEY,
            "models": {"claude": MODEL},
        },
    }
    keys = [
        {"name": "alice", "key": ALICE_KEY},
        {"name": "bob", "key": BOB_KEY, "models": ["other/claude"]},
        # A budget below any priced call: only calls outside budgets get through.
        {"name": "frugal", "key": FRUGAL_KEY, "budget": {"usd": 0.000001, "period": "day"}},
    ]
    cfg = base_config(tmp, providers, auth={"keys": keys})
    try:
        gw = start_gateway(tmp, cfg, "--log-level", "debug")
        try:
            yield Env(seat, other, gw)
        finally:
            gw.stop()
    finally:
        seat.stop()
        other.stop()


def _hello(client: anthropic.Anthropic, model: str = "seat/claude") -> Any:
    return client.messages.with_raw_response.create(
        model=model, max_tokens=32, messages=[{"role": "user", "content": "hello"}]
    )


def test_the_callers_token_reaches_anthropic_and_the_gateway_key_does_not(env: Env) -> None:
    raw = _hello(env.client())
    message = raw.parse()
    assert message.content[0].text == "echo: hello"  # type: ignore[union-attr]
    sent = env.seat.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {OAUTH}"
    assert "x-api-key" not in sent.headers
    assert ALICE_KEY not in json.dumps(sent.headers)
    assert "x-llmrelay-key" not in sent.headers
    row = env.row(raw.headers["request-id"])
    assert row["key_name"] == "alice"
    assert row["provider"] == "seat"
    assert row["billing"] == "subscription"
    price = SHIPPED_PRICES[MODEL]
    usage = message.usage
    listed = (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1e6
    assert row["cost_usd"] == pytest.approx(listed)  # priced for reporting


def test_streams_work_in_subscription_mode(env: Env) -> None:
    with env.client().messages.stream(
        model="seat/claude", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "echo: hi"
    assert env.seat.requests[-1].headers["authorization"] == f"Bearer {OAUTH}"


def test_batches_and_files_use_the_callers_token(env: Env) -> None:
    client = env.client(default_headers={"x-llmrelay-key": ALICE_KEY, "x-llmrelay-account": "seat"})
    page = client.beta.files.list()
    assert page.data == []
    assert env.seat.requests[-1].headers["authorization"] == f"Bearer {OAUTH}"


def test_the_token_never_goes_to_another_account(env: Env) -> None:
    _hello(env.client(), model="other/claude")
    sent = env.other.requests[-1]
    assert sent.headers["x-api-key"] == OTHER_KEY
    assert OAUTH not in json.dumps(sent.headers)
    assert sent.headers.get("authorization") is None


def test_no_client_authorization_is_a_401_naming_the_header(env: Env) -> None:
    before = len(env.seat.requests)
    # The gateway key as x-api-key, no token of the caller's own.
    client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=env.gw.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        _hello(client)
    assert "Authorization: Bearer" in e.value.message
    assert "x-llmrelay-key" in e.value.message
    # The gateway key as Authorization: Bearer is not forwarded as the caller's token either.
    bearer = anthropic.Anthropic(auth_token=ALICE_KEY, base_url=env.gw.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        _hello(bearer)
    assert len(env.seat.requests) == before


def test_a_gateway_key_in_both_headers_is_never_forwarded_as_the_token(env: Env) -> None:
    # Claude Code with ANTHROPIC_AUTH_TOKEN set to the gateway key as well as the custom
    # header: Authorization then carries a gateway key (the caller's own, or another's).
    before = len(env.seat.requests)
    for token in (ALICE_KEY, BOB_KEY):
        with (
            env.client(auth_token=token) as client,
            pytest.raises(anthropic.AuthenticationError) as e,
        ):
            _hello(client)
        assert "gateway key in Authorization is never forwarded" in e.value.message
    # The passthrough path too.
    with env.client(auth_token=ALICE_KEY) as client, pytest.raises(anthropic.AuthenticationError):
        client.get("/proxy/seat/v1/models", cast_to=object)
    assert len(env.seat.requests) == before


def test_the_gateway_still_authenticates_and_applies_model_lists(env: Env) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        _hello(env.client(default_headers={"x-llmrelay-key": "sk-not-a-gateway-key-000"}))
    with pytest.raises(anthropic.PermissionDeniedError):
        _hello(env.client(default_headers={"x-llmrelay-key": BOB_KEY}))


def test_subscription_calls_are_outside_usd_budgets(env: Env) -> None:
    frugal = env.client(default_headers={"x-llmrelay-key": FRUGAL_KEY})
    for _ in range(3):  # priced calls, none of them held or counted against the budget
        raw = _hello(frugal)
        row = env.row(raw.headers["request-id"])
        assert (row["billing"], row["key_name"]) == ("subscription", "frugal")
        assert row["cost_usd"] > 0.000001
    # The same key on an API-key account meets its budget.
    with pytest.raises(anthropic.RateLimitError) as e:
        _hello(frugal, model="other/claude")
    assert "budget" in e.value.message


def test_the_token_is_in_no_log_line_and_no_usage_row(env: Env) -> None:
    _hello(env.client())
    # An upstream error that echoes the token: masked for the client and the logs.
    env.seat.enqueue(json_reply(error_body(400, f"bad credential Bearer {OAUTH} here"), 400))
    with pytest.raises(anthropic.BadRequestError) as e:
        _hello(env.client())
    assert OAUTH not in e.value.message
    assert "***" in e.value.message
    status, _, body = raw_request(
        f"{env.gw.url}/v1/messages",
        json.dumps({"model": "seat/claude", "max_tokens": 8, "messages": []}).encode(),
        {"authorization": f"Bearer {OAUTH}-wrong", "x-llmrelay-key": ALICE_KEY},
    )
    assert status == 401  # the fake refuses a token it does not know
    assert OAUTH.encode() not in body
    log = env.gw.log()
    assert "request" in log  # debug logging is on: every call wrote lines
    assert OAUTH not in log
    for path in (Path(env.gw.usage_db), Path(f"{env.gw.usage_db}-wal")):
        stored = path.read_bytes() if path.exists() else b""
        assert b"oat01-subscription" not in stored


def test_a_passthrough_account_needs_no_api_key_and_refuses_one() -> None:
    from pydantic import ValidationError

    from llmrelay.config import AnthropicProviderConfig

    cfg = AnthropicProviderConfig(type="anthropic", auth="passthrough", models={"c": "m"})
    assert cfg.api_key is None
    with pytest.raises(ValidationError, match="remove api_key"):
        AnthropicProviderConfig(
            type="anthropic", auth="passthrough", api_key="sk-x", models={"c": "m"}
        )
    with pytest.raises(ValidationError, match="api_key is required"):
        AnthropicProviderConfig(type="anthropic", models={"c": "m"})


def test_allowed_accounts_must_name_configured_accounts(tmp_path: Path) -> None:
    from llmrelay.config import ConfigError, load_settings

    path = tmp_path / "c.yaml"
    path.write_text(
        "auth:\n"
        "  keys:\n"
        "    - {name: a, key: sk-test-aaaaaaaaaaaa, allowed_accounts: [seat, nope]}\n"
        "providers:\n"
        "  seat: {type: anthropic, auth: passthrough, models: {claude: claude-x}}\n"
    )
    with pytest.raises(ConfigError, match=r"auth\.keys\.0\.allowed_accounts: 'nope'"):
        load_settings(path)
    path.write_text(path.read_text().replace(", nope", ""))
    settings = load_settings(path)
    assert settings.auth.keys[0].allowed_accounts == ["seat"]
