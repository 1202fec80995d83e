"""Recent outcomes per target: each attempt of an ended call counts toward its target's
error rate and latency percentiles for 5 minutes, at most 200 per target."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from llmrelay.obs.target_stats import WINDOW_ATTEMPTS, TargetStats
from llmrelay.routing.executor import AttemptRecord


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def call(*attempts: AttemptRecord) -> Any:
    return SimpleNamespace(attempts=list(attempts))


def test_error_rate_and_percentiles_of_the_last_attempts() -> None:
    clock = Clock()
    stats = TargetStats(clock)
    for i in range(1, 21):
        c = call(
            AttemptRecord("busy/echo", 529, "overloaded_error", 0.01),
            AttemptRecord("mock/echo", 200, None, i / 1000),
        )
        stats.call_started(c)
        assert stats.in_flight == 1
        stats.call_ended(c)
    assert stats.in_flight == 0
    busy, mock = stats.summary("busy/echo"), stats.summary("mock/echo")
    assert busy is not None and (busy.attempts, busy.error_rate) == (20, 1.0)
    assert mock is not None and (mock.attempts, mock.error_rate) == (20, 0.0)
    assert (mock.p50_ms, mock.p95_ms) == (10.0, 19.0)
    assert stats.summary("other/model") is None
    clock.now += 301
    assert stats.summary("mock/echo") is None


def test_a_target_keeps_its_last_200_attempts() -> None:
    stats = TargetStats(Clock())
    for _ in range(WINDOW_ATTEMPTS + 50):
        stats.call_ended(call(AttemptRecord("a/m", 200, None, 0.1)))
    summary = stats.summary("a/m")
    assert summary is not None and summary.attempts == WINDOW_ATTEMPTS


def test_a_request_the_gateway_refused_itself_is_not_the_targets_error() -> None:
    stats = TargetStats(Clock())
    refused = AttemptRecord("openai/gpt", 400, "invalid_request_error", 0.0, "no", "openai", False)
    stats.call_ended(call(refused))
    assert stats.summary("openai/gpt") is None
    stats.call_ended(call(refused, AttemptRecord("mock/echo", 400, "invalid_request_error", 0.1)))
    mock = stats.summary("mock/echo")
    assert mock is not None and (mock.attempts, mock.error_rate) == (1, 1.0)
    assert stats.summary("openai/gpt") is None
