"""The policy pieces on their own: key ring, key specs, budget periods, limit windows."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from llmrelay.errors import AuthenticationError
from llmrelay.policy.auth import KeyRing, Principal, digest
from llmrelay.policy.budget import period_of
from llmrelay.policy.limits import limit_set, rate_limited
from llmrelay.policy.virtual_keys import (
    KeySpecError,
    key_json,
    new_secret,
    parse_duration,
    virtual_key_from_spec,
)
from llmrelay.stores.keys import KeyChanges, KeySecret, Limits, VirtualKey


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def headers(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def test_key_ring_applies_changes_rotation_revocation_and_expiry() -> None:
    ring = KeyRing([("sk-config-key-123", Principal("cfg", "cfg:cfg"))])
    key = VirtualKey("vk_1", "svc", team="ml", models=("a/b",), limits=Limits(rpm=5))
    old, new = "sk-llmrelay-old-secret", "sk-llmrelay-new-secret"
    ring.apply(KeyChanges([key], [KeySecret(digest(old), "vk_1")], 1))
    p = ring.authenticate(headers(old))
    assert (p.name, p.key_id, p.team, p.models, p.limits.rpm) == (
        "svc",
        "vk_1",
        "ml",
        frozenset({"a/b"}),
        5,
    )
    # Rotation: both secrets, the old one until its grace end.
    grace_end = time.time() + 0.2
    ring.apply(
        KeyChanges(
            [key],
            [KeySecret(digest(old), "vk_1", grace_end), KeySecret(digest(new), "vk_1")],
            2,
        )
    )
    assert ring.authenticate(headers(old)).key_id == "vk_1"
    assert ring.authenticate({"authorization": f"Bearer {new}"}).key_id == "vk_1"
    time.sleep(0.25)
    with pytest.raises(AuthenticationError, match="rotated out"):
        ring.authenticate(headers(old))
    # Revocation keeps the entry to say why.
    revoked = VirtualKey("vk_1", "svc", revoked_at=time.time())
    ring.apply(KeyChanges([revoked], [KeySecret(digest(new), "vk_1")], 3))
    with pytest.raises(AuthenticationError, match="revoked"):
        ring.authenticate(headers(new))
    # A changed key loses secrets that are no longer listed.
    ring.apply(KeyChanges([key], [], 4))
    with pytest.raises(AuthenticationError, match="invalid gateway key"):
        ring.authenticate(headers(new))
    expired = VirtualKey("vk_2", "gone", expires_at=time.time() - 1)
    ring.apply(KeyChanges([expired], [KeySecret(digest("sk-x-expired-1"), "vk_2")], 5))
    with pytest.raises(AuthenticationError, match="expired"):
        ring.authenticate(headers("sk-x-expired-1"))
    assert ring.authenticate(headers("sk-config-key-123")).name == "cfg"


def test_key_spec_validation_names_the_field() -> None:
    now = 1_000_000.0
    key = virtual_key_from_spec(
        {
            "name": " svc ",
            "models": "a/b, c/d",
            "rpm": 10,
            "limits": {"tpd": 5},
            "budget_usd": 5,
            "budget_period": "week",
            "expires_in": "30d",
        },
        now,
    )
    assert key.name == "svc" and key.models == ("a/b", "c/d")
    assert key.limits == Limits(rpm=10, tpd=5)
    assert key.budget is not None and (key.budget.usd, key.budget.period) == (5.0, "week")
    assert key.expires_at == now + 30 * 86400
    shown = key_json(key, now)
    assert shown["status"] == "active" and shown["limits"] == {"rpm": 10, "tpd": 5}
    assert key_json(key, now + 31 * 86400)["status"] == "expired"
    for spec, field in [
        ({}, "name"),
        ({"name": "x", "rpm": 0}, "rpm"),
        ({"name": "x", "rpm": True}, "rpm"),
        ({"name": "x", "budget_usd": -1}, "budget_usd"),
        ({"name": "x", "budget_usd": 1, "budget_period": "year"}, "budget_period"),
        ({"name": "x", "budget_period": "day"}, "budget_usd"),
        ({"name": "x", "limits": {"rpq": 1}}, "rpq"),
        ({"name": "x", "expires_in": "soon"}, "duration"),
        ({"name": "x", "owner": "me"}, "owner"),
    ]:
        with pytest.raises(KeySpecError, match=field):
            virtual_key_from_spec(spec, now)


def test_secrets_are_random_and_only_their_digest_is_kept() -> None:
    a, row = new_secret("vk_1")
    b, _ = new_secret("vk_1")
    assert a != b and a.startswith("sk-llmrelay-") and len(a) >= 50
    assert row.digest == digest(a) and a.encode() not in row.digest


def test_durations() -> None:
    assert [parse_duration(d) for d in ("90s", "15m", "24h", "30d", "2w", "1.5h")] == [
        90,
        900,
        86400,
        2592000,
        1209600,
        5400,
    ]


@pytest.mark.parametrize(
    ("period", "now", "start", "end", "label"),
    [
        ("day", "2026-11-30T13:00:00", "2026-11-30T00:00:00", "2026-12-01T00:00:00", "2026-11-30"),
        ("week", "2026-11-29T23:59:59", "2026-11-23T00:00:00", "2026-11-30T00:00:00", "2026-W48"),
        ("week", "2026-11-30T00:00:00", "2026-11-30T00:00:00", "2026-12-07T00:00:00", "2026-W49"),
        ("month", "2026-12-31T23:00:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00", "2026-12"),
        ("month", "2028-02-15T00:00:00", "2028-02-01T00:00:00", "2028-03-01T00:00:00", "2028-02"),
    ],
)
def test_budget_periods_are_utc_calendar_periods(
    period: str, now: str, start: str, end: str, label: str
) -> None:
    p = period_of(period, ts(now))
    assert (p.start, p.end, p.label) == (ts(start), ts(end), label)


def test_limit_windows_and_refusal_wording() -> None:
    s = limit_set("key:vk_1", Limits(rpm=60, tph=1000, rpd=5))
    assert [(w.key, w.limit, w.window_s, w.bucket_s) for w in s.windows] == [
        ("rl:key:vk_1:rpm", 60, 60, 1),
        ("rl:key:vk_1:rpd", 5, 86400, 1440),
        ("rl:key:vk_1:tph", 1000, 3600, 60),
    ]
    assert s.tokens == (False, False, True)
    assert limit_set("key:vk_1", Limits(rpm=60, tph=1000, rpd=5)) is s
    err = rate_limited("key:vk_1", "60 requests per minute", 2.2, 1, 60, 60)
    assert err.status == 429 and err.headers["retry-after"] == "3"
    assert err.headers["retry-after-ms"] == "2200"
    assert "key vk_1 allows 60 requests per minute; retry in 3 s" in err.message
    too_big = rate_limited("team:ml", "100 tokens per minute", 60, 500, 100, 60)
    assert too_big.headers == {"x-should-retry": "false"}


def test_target_token_holds_settle_to_the_serving_target_only() -> None:
    import asyncio

    from llmrelay.errors import RateLimitedError
    from llmrelay.policy.targets import TargetLimits
    from llmrelay.stores.memory_counters import MemoryCounterStore

    async def main() -> None:
        clock = [1_000_000.0]
        counters = MemoryCounterStore(lambda: clock[0])
        targets = TargetLimits(counters, {"a/x": Limits(tpm=1000), "b/y": Limits(tpm=1000)})
        assert not targets.limits("c/z") and await targets.hold("c/z", 10) is None
        first = await targets.hold("a/x", 400)
        second = await targets.hold("b/y", 400)
        assert first is not None and second is not None
        # a/x failed, b/y served 700 tokens: a/x gets its 400 back, b/y counts 700.
        targets.release_soon([first, second], "b/y", 700)
        await targets.aclose()
        assert await targets.hold("a/x", 1000) is not None  # all 1000 free again
        with pytest.raises(RateLimitedError, match="model b/y allows 1000 tokens per minute"):
            await targets.hold("b/y", 301)
        assert await targets.hold("b/y", 300) is not None

    asyncio.run(main())
