"""Credentials stay where they belong, through a real gateway: a provider's error echoing
its key reaches neither the client nor the log, and client headers meant for other systems
never reach a provider."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, base_config
from tests.fakes.anthropic_upstream import FakeAnthropic, error_body, json_reply, stream_error_reply

Factory = Callable[..., GatewayProcess]
KEY_1 = "sk-ant-api03-FirstUpstreamSecret_0123456789"
KEY_2 = "sk-ant-api03-SecondUpstreamSecret_0123456789"


def _providers(fake: FakeAnthropic, **rules: Any) -> dict[str, Any]:
    return {
        "one": {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": KEY_1,
            "models": {"m": "m"},
            **rules,
        },
        "two": {"type": "anthropic", "base_url": fake.url, "api_key": KEY_2, "models": {"m": "m"}},
    }


def _echo(status: int, key: str) -> Any:
    return json_reply(error_body(status, f"invalid x-api-key: {key}"), status)


def test_a_provider_error_echoing_its_key_is_masked_for_the_client_and_the_log(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    with FakeAnthropic() as fake:
        models = {
            "pair": {
                "targets": [{"model": "one/m", "priority": 1}, {"model": "two/m", "priority": 2}]
            }
        }
        gw = gateway_factory(
            base_config(tmp_path, _providers(fake), models=models), "--log-level", "info"
        )
        # The first target fails over (500), the second answers (401); both echo their key.
        fake.enqueue(_echo(500, KEY_1), _echo(401, KEY_2))
        with (
            anthropic.Anthropic(base_url=gw.url, api_key=ALICE_KEY, max_retries=0) as client,
            pytest.raises(anthropic.AuthenticationError) as caught,
        ):
            client.messages.create(
                model="pair", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            )
        assert len(fake.requests) == 2
    err = caught.value
    assert KEY_2 not in str(err.body) and KEY_2 not in err.response.text
    assert "invalid x-api-key: sk-ant-***" in err.response.text
    log = gw.log()
    assert "attempt failed" in log  # the failed attempt is logged, with its message...
    assert "sk-ant-***" in log
    assert KEY_1 not in log and KEY_2 not in log  # ...masked


def test_an_error_event_echoing_the_key_in_a_stream_is_masked(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    with FakeAnthropic() as fake:
        gw = gateway_factory(base_config(tmp_path, _providers(fake)))
        fake.enqueue(stream_error_reply(529, f"overloaded for key {KEY_1}"))
        fake.enqueue(
            stream_error_reply(
                529, f"overloaded for key {KEY_1}", after=[("ping", {"type": "ping"})]
            )
        )
        bodies = []
        for _ in range(2):
            req = urllib.request.Request(
                gw.url + "/v1/messages",
                data=json.dumps(
                    {
                        "model": "one/m",
                        "max_tokens": 16,
                        "stream": True,
                        "messages": [{"role": "user", "content": "hi"}],
                    }
                ).encode(),
                headers={"x-api-key": ALICE_KEY, "content-type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    bodies.append(resp.read())
            except urllib.error.HTTPError as e:  # an error before any event is an HTTP error
                bodies.append(e.read())
    for body in bodies:
        assert KEY_1.encode() not in body
        assert b"overloaded for key sk-ant-***" in body
    assert KEY_1 not in gw.log()


# -- client headers -------------------------------------------------------------------------

SENT = {
    "x-forwarded-for": "203.0.113.7",
    "x-real-ip": "203.0.113.7",
    "forwarded": "for=203.0.113.7",
    "x-goog-api-key": "AIzaSyA-not-for-anthropic-0123456789abcdef",
    "x-amz-security-token": "FwoGZXIvYXdzEXAMPLE",
    "openai-organization": "org-123",
    "openai-project": "proj_123",
    "anthropic-admin-key": "sk-ant-admin01-xyz",
    "cookie": "session=abc",
    "proxy-authorization": "Basic dXNlcjpwYXNz",
}


def _call_with_headers(gw: GatewayProcess, extra: dict[str, str]) -> None:
    req = urllib.request.Request(
        gw.url + "/v1/messages",
        data=json.dumps(
            {"model": "one/m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        ).encode(),
        headers={
            "x-api-key": ALICE_KEY,
            "content-type": "application/json",
            "anthropic-beta": "interleaved-thinking-2025-05-14",
            "x-trace-id": "t-1",
            **extra,
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_client_headers_for_other_systems_never_reach_the_provider(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    with FakeAnthropic() as fake:
        gw = gateway_factory(base_config(tmp_path, _providers(fake)))
        _call_with_headers(gw, SENT)
    seen = fake.requests[0].headers
    for name in SENT:
        assert name not in seen, name
    assert seen["x-api-key"] == KEY_1
    assert seen["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert seen["x-trace-id"] == "t-1"


def test_forward_headers_lets_a_header_dropped_by_default_through_end_to_end(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    with FakeAnthropic() as fake:
        providers = _providers(
            fake, forward_headers=["cookie", "x-forwarded-for"], drop_headers=["x-trace-id"]
        )
        gw = gateway_factory(base_config(tmp_path, providers))
        _call_with_headers(gw, SENT)
    seen = fake.requests[0].headers
    assert "x-trace-id" not in seen
    assert seen["x-forwarded-for"] == "203.0.113.7"
    assert seen["cookie"] == "session=abc"
