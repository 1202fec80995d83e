"""The UsageStore protocol, on every implementation (see conftest.py)."""

from __future__ import annotations

import calendar

import pytest

from llmrelay.stores.database import Stores
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import RejectedRowsError, UsageRecord

DAY1 = calendar.timegm((2025, 3, 1, 0, 0, 0))  # 2025-03-01T00:00:00Z
DAY2 = DAY1 + 86400


def rec(ts: float, key: str = "alice", model: str = "m1", **kw: object) -> UsageRecord:
    base: dict[str, object] = {
        "ts": ts,
        "request_id": f"req_{ts}_{key}_{model}",
        "key_name": key,
        "model": model,
        "provider": "anthropic",
        "provider_model": "claude-x",
        "endpoint": "messages",
        "stream": False,
        "status": 200,
        "input_tokens": 10,
        "output_tokens": 5,
        "latency_s": 0.5,
    }
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


def test_rows_round_trip_every_field(stores: Stores) -> None:
    full = UsageRecord(
        ts=1_741_000_000.123456,
        request_id="req_ünï✓",
        key_name="dev ünïcode 日本",
        model="anthropic/claude",
        provider="anthropic",
        provider_model="claude-sonnet-4-5",
        endpoint="messages",
        stream=True,
        status=529,
        input_tokens=2**40,
        output_tokens=2**33 + 1,
        cache_creation_input_tokens=2**31,
        cache_read_input_tokens=7,
        latency_s=12.75,
        ttft_s=0.125,
        error_type="overloaded_error",
        upstream_request_id="req_upstream",
        key_id="vk_abc",
        team="platform",
        cost_usd=0.0001234,
        attempts=3,
        attempt_log='[{"target": "a/b", "status": 529}]',
    )
    bare = rec(1.0)
    stores.usage.write([full, bare])
    stores.usage.write([])
    assert stores.usage.rows() == [full, bare]
    assert bare.key_id is None and bare.cost_usd is None and bare.attempts == 1
    assert type(stores.usage.rows()[1].stream) is bool


def write_sample(stores: Stores) -> None:
    stores.usage.write(
        [
            rec(DAY1 + 10, "alice", "m1", team="t1", key_id="vk_a", cost_usd=1.0),
            rec(DAY1 + 20, "alice", "m2", team="t1", key_id="vk_a", cost_usd=None),
            rec(DAY1 + 30, "bob", "m1", key_id="vk_b", cost_usd=0.25, status=500),
            rec(DAY2 + 10, "alice", "m1", team="t1", key_id="vk_a", cost_usd=2.0),
            rec(DAY2 + 20, "carol", "m1", team="t2", key_id="vk_c", cost_usd=None, status=429),
        ]
    )


def test_summary_by_key_and_model(stores: Stores) -> None:
    write_sample(stores)
    rows = stores.usage.summary(["key", "model"])
    assert [(r.group, r.requests, r.errors, r.cost_usd) for r in rows] == [
        (("alice", "m1"), 2, 0, 3.0),
        (("alice", "m2"), 1, 0, None),
        (("bob", "m1"), 1, 1, 0.25),
        (("carol", "m1"), 1, 1, None),
    ]
    alice = rows[0]
    assert (alice.input_tokens, alice.output_tokens) == (20, 10)
    assert (alice.cache_creation_input_tokens, alice.cache_read_input_tokens) == (0, 0)
    assert alice.avg_latency_s == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (["team"], [(("",), 1), (("t1",), 3), (("t2",), 1)]),
        (["model"], [(("m1",), 4), (("m2",), 1)]),
        (["day"], [(("2025-03-01",), 3), (("2025-03-02",), 2)]),
        (["day", "key"], [(("2025-03-01", "alice"), 2), (("2025-03-01", "bob"), 1),
                          (("2025-03-02", "alice"), 1), (("2025-03-02", "carol"), 1)]),
        (["team", "model", "day"], [(("", "m1", "2025-03-01"), 1),
                                    (("t1", "m1", "2025-03-01"), 1),
                                    (("t1", "m1", "2025-03-02"), 1),
                                    (("t1", "m2", "2025-03-01"), 1),
                                    (("t2", "m1", "2025-03-02"), 1)]),
        ([], [((), 5)]),
    ],
)  # fmt: skip
def test_summary_groups_by_any_fields(
    stores: Stores, group_by: list[str], expected: list[tuple[tuple[str, ...], int]]
) -> None:
    write_sample(stores)
    rows = stores.usage.summary(group_by)  # type: ignore[arg-type]
    assert [(r.group, r.requests) for r in rows] == expected


def test_summary_since_counts_rows_at_or_after(stores: Stores) -> None:
    write_sample(stores)
    rows = stores.usage.summary(["day"], since=DAY2 + 10)
    assert [(r.group, r.requests, r.cost_usd) for r in rows] == [(("2025-03-02",), 2, 2.0)]
    assert stores.usage.summary(["key"], since=DAY2 + 3600) == []


def test_summary_of_nothing_is_empty(stores: Stores) -> None:
    assert stores.usage.summary([]) == []
    assert stores.usage.summary(["key", "day"]) == []


def test_summary_by_an_unknown_field_raises(stores: Stores) -> None:
    with pytest.raises(ValueError, match="provider"):
        stores.usage.summary(["provider"])  # type: ignore[list-item]


def test_spend_sums_cost_by_key_or_team_since_a_time(stores: Stores) -> None:
    write_sample(stores)
    assert stores.usage.spend("key", "vk_a", DAY1) == pytest.approx(3.0)
    assert stores.usage.spend("key", "vk_a", DAY1 + 11) == pytest.approx(2.0)
    assert stores.usage.spend("team", "t1", DAY1) == pytest.approx(3.0)
    assert stores.usage.spend("team", "t2", DAY1) == 0.0  # its only row has no cost
    assert stores.usage.spend("key", "vk_nobody", 0) == 0.0
    with pytest.raises(ValueError, match="scope"):
        stores.usage.spend("model", "m1", 0)  # type: ignore[arg-type]


def test_spend_leaves_out_calls_a_subscription_paid(stores: Stores) -> None:
    stores.usage.write(
        [
            rec(DAY1, key_id="vk_s", cost_usd=1.0),
            rec(DAY1 + 1, key_id="vk_s", cost_usd=5.0, billing="subscription"),
            rec(DAY1 + 2, key_id="vk_s", cost_usd=0.5, billing="subscription_budgeted"),
            rec(DAY1 + 3, key_id="vk_s", cost_usd=0.25, billing="batch"),
        ]
    )
    assert stores.usage.spend("key", "vk_s", DAY1) == pytest.approx(1.75)
    rows = stores.usage.rows()
    assert [r.billing for r in rows] == [None, "subscription", "subscription_budgeted", "batch"]


def test_tokens_known_round_trips(stores: Stores) -> None:
    stores.usage.write([rec(DAY1, tokens_known=False), rec(DAY1 + 1, tokens_known=True), rec(2.0)])
    assert [r.tokens_known for r in stores.usage.rows()] == [False, True, None]


@pytest.mark.parametrize(
    "bad",
    [
        {"model": "\ud800"},  # no database can encode a lone surrogate
        {"upstream_request_id": b"\xff".decode("utf-8", "surrogateescape")},
        {"input_tokens": 2**70},  # past 64 bits
        {"error_type": "a\x00b"},  # PostgreSQL text cannot hold NUL; SQLite can
    ],
    ids=["lone_surrogate", "surrogate_escape", "past_64_bits", "nul"],
)
def test_a_batch_with_a_row_the_database_refuses_raises_rejected_rows_and_writes_nothing(
    stores: Stores, bad: dict[str, object]
) -> None:
    batch = [rec(1.0), rec(2.0, **bad), rec(3.0)]
    if "error_type" in bad and isinstance(stores.usage, SQLiteUsageStore):
        stores.usage.write(batch)
        assert [r.error_type for r in stores.usage.rows()] == [None, "a\x00b", None]
        return
    with pytest.raises(RejectedRowsError):
        stores.usage.write(batch)
    assert stores.usage.rows() == []
    stores.usage.write([rec(4.0)])  # the store still works
    assert [r.ts for r in stores.usage.rows()] == [4.0]
