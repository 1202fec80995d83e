"""Reading and clamping the per-request override headers."""

from __future__ import annotations

import pytest

from llmrelay.errors import InvalidRequestError
from llmrelay.policy.overrides import OverrideAllowance, Overrides, read_overrides
from llmrelay.routing.virtual import AttemptPolicy

ALLOW = OverrideAllowance(max_attempts=3, retry_statuses=frozenset({429, 503}), max_timeout_ms=1000)


def test_no_header_is_no_override() -> None:
    assert read_overrides({"x-other": "1"}, ALLOW) is None


@pytest.mark.parametrize(
    ("value", "attempts", "statuses", "clamped"),
    [
        ("2", 2, None, ()),
        (" attempts=3 ", 3, None, ()),
        ("statuses=429", None, frozenset({429}), ()),
        ("attempts=2;statuses=429,503", 2, frozenset({429, 503}), ()),
        ("ATTEMPTS=7; statuses=", 3, frozenset(), ("retry.attempts=3",)),
        ("attempts=2; statuses=500,529", 2, frozenset(), ("retry.statuses=none",)),
        ("statuses=500, 503", None, frozenset({503}), ("retry.statuses=503",)),
    ],
)
def test_retry_header(
    value: str, attempts: int | None, statuses: frozenset[int] | None, clamped: tuple[str, ...]
) -> None:
    got = read_overrides({"x-llmrelay-retry": value}, ALLOW)
    assert got == Overrides(attempts=attempts, retry_on=statuses, clamped=clamped)


def test_timeouts_in_milliseconds_clamped_to_the_allowance() -> None:
    got = read_overrides(
        {"x-llmrelay-timeout-ms": "250", "x-llmrelay-ttft-timeout-ms": "700000"}, ALLOW
    )
    assert got == Overrides(
        timeout_s=0.25, first_token_timeout_s=600.0, clamped=("ttft-timeout-ms=600000",)
    )
    assert got.headers() == {"x-llmrelay-overrides-clamped": "ttft-timeout-ms=600000"}


def test_policy_keeps_what_is_not_overridden() -> None:
    base = AttemptPolicy(attempts_per_target=1, retry_on=frozenset({500}), timeout_s=60)
    got = Overrides(attempts=3, first_token_timeout_s=2.0).policy(base)
    assert got.attempts_per_target == 3
    assert got.retry_on == frozenset({500})
    assert (got.timeout_s, got.first_token_timeout_s) == (60, 2.0)
    assert Overrides().headers() == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-llmrelay-retry", ""),
        ("x-llmrelay-retry", "attempts=-1"),
        ("x-llmrelay-retry", "attempts=٣"),  # a digit, not an ASCII one
        ("x-llmrelay-retry", "attempts=1; statuses=abc"),
        ("x-llmrelay-retry", "attempts=1; statuses=600"),
        ("x-llmrelay-retry", "x" * 500),
        ("x-llmrelay-timeout-ms", "0"),
        ("x-llmrelay-timeout-ms", "1e3"),
        ("x-llmrelay-ttft-timeout-ms", "1234567890"),
    ],
)
def test_unparsable_headers_are_refused_with_a_bounded_message(name: str, value: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        read_overrides({name: value}, ALLOW)
    assert e.value.message.startswith(f"{name}: expected")
    assert len(e.value.message) < 200
